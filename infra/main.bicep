// Flux -> Azure DevOps GitOps connector: everything the function app needs, in one resource group.
//
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.bicepparam
//
// Identity first: the app runs as one user-assigned managed identity, which holds data-plane
// roles only (storage blobs and tables, the Service Bus queue, telemetry, Key Vault secrets).
// No connection string or key exists in the app settings: shared keys are disabled on storage,
// SAS on Service Bus and local auth on Application Insights; secrets sit in Key Vault and are
// referenced, not copied. See docs/deploy.md.
//
// Keep this file (and the modules) within what pycep-parser 0.5.1, checkov's Bicep parser, can
// read: no `import`, `func`, `@export()`, spread `...`, `assert` or `extension`
// (`bash .ci/checkov.sh` fails on parsing errors).
targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// General
// ---------------------------------------------------------------------------------------------

@description('Azure region of all resources. Flex Consumption is not offered everywhere.')
param location string = resourceGroup().location

@description('Short lowercase prefix of resource names (letters and digits).')
@minLength(2)
@maxLength(10)
param baseName string = 'gitops'

@description('Tags for every resource.')
param tags object = {}

@description('Function app name (its host name <name>.azurewebsites.net); empty: derived from baseName.')
param functionAppName string = ''

// The package (`make package`) and its lock are built for 3.11 only: its compiled wheels load
// on no other version.
@description('Python version of the Flex Consumption runtime.')
@allowed([
  '3.11'
])
param pythonVersion string = '3.11'

@description('Memory per instance in MB (Flex Consumption sizes). 512: the smallest, and enough: the worker peaks at ~70 MB (bench/cost.py), the host beside it; billed per GB-s of instance memory, so 512 costs a quarter of 2048 (docs/cost.md).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 512

@description('Maximum number of instances the app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Redundancy of the storage account (host, deployment package, state tables).')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSkuName string = 'Standard_LRS'

@description('Days of log retention in the Log Analytics workspace.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

// ---------------------------------------------------------------------------------------------
// Service Bus queue (see modules/servicebus.bicep for why these values)
// ---------------------------------------------------------------------------------------------

@description('Queue between ingest and processor (app setting SERVICEBUS_QUEUE).')
@minLength(1)
@maxLength(260)
param serviceBusQueueName string = 'flux-events'

@description('Duplicate detection window (ISO 8601, PT20S..P7D). Flux retries a webhook for ~15-30 s and Alerts re-send identical bodies, so one hour absorbs the repeats. Fixed at queue creation.')
param duplicateDetectionWindow string = 'PT1H'

@description('Deliveries before a message is dead-lettered. Abandoned messages are redelivered at once (no backoff); the processor retries Azure DevOps failures itself.')
@minValue(1)
@maxValue(100)
param maxDeliveryCount int = 5

@description('Message and session lock duration (ISO 8601, at most PT5M); the host renews it while a handler runs.')
param lockDuration string = 'PT1M'

@description('Time to live of a queued event (ISO 8601); expired events are dead-lettered.')
param messageTimeToLive string = 'P1D'

@description('Also grant Azure Service Bus Data Owner on the queue so the scale controller can read its length (more accurate scaling, broader rights).')
param serviceBusGrantManageForScaling bool = false

// ---------------------------------------------------------------------------------------------
// Secrets: stored in Key Vault, referenced by app settings, never output.
// ---------------------------------------------------------------------------------------------

@secure()
@description('FLUX_CLUSTER_KEYS: one HMAC key per cluster, JSON {"<cluster>": "<key>" or ["<new>", "<old>"] while rotating} (docs/security.md); the key that signs an event decides its cluster.')
param fluxClusterKeys string = ''

@secure()
@description('FLUX_HMAC_KEY: the shared key of older installs (comma-separated during rotation); any holder can speak for every cluster: prefer fluxClusterKeys. Empty: not set.')
param fluxHmacKey string = ''

@secure()
@description('AZDO_PAT: Azure DevOps PAT, only as a fallback to the managed identity; empty: not set.')
param azdoPat string = ''

@secure()
@description('AZDO_HOOK_SECRET: shared secret of the Azure DevOps service hook; empty: not set.')
param azdoHookSecret string = ''

@secure()
@description('ARGOCD_INSTANCES: one secret per Argo CD instance and the clusters it speaks for, JSON {"<instance>": {"secrets": ["<secret>"], "clusters": ["<cluster>"]}} (docs/argocd.md); empty: not set.')
param argocdInstances string = ''

@secure()
@description('ARGOCD_WEBHOOK_SECRET: shared secret of the Argo CD webhook (comma-separated during rotation), bound to no cluster: prefer argocdInstances. Empty: not set.')
param argocdWebhookSecret string = ''

@secure()
@description('SUBSCRIBERS_HMAC_KEY: HMAC key for events forwarded to SUBSCRIBERS; empty: not set.')
param subscribersHmacKey string = ''

// ---------------------------------------------------------------------------------------------
// Connector settings (connector/settings.py; empty strings mean "not set")
// ---------------------------------------------------------------------------------------------

@description('AZDO_ORG_URL: Azure DevOps organisation URL, e.g. https://dev.azure.com/contoso')
param azdoOrgUrl string

@description('AZDO_PROJECT: project of the manifests repository.')
param azdoProject string

@description('AZDO_GITOPS_REPO: manifests (HLD) repository that Flux pulls.')
param azdoGitopsRepo string

@description('AZDO_PR_REPO: repository of the pull requests, if not the manifests repository.')
param azdoPrRepo string = ''

@description('AZDO_API_VERSION: Azure DevOps REST API version.')
param azdoApiVersion string = '7.1'

@description('AZDO_DRY_RUN: log Azure DevOps writes instead of making them.')
param azdoDryRun bool = false

@description('STATUS_GENRE: genre of the commit statuses.')
param statusGenre string = 'flux'

@description('STATUS_TARGET_URL: link of the commit statuses (e.g. a dashboard).')
param statusTargetUrl string = ''

@description('DEFAULT_CLUSTER: cluster name for events without eventMetadata.cluster.')
param defaultCluster string = ''

@description('DEFAULT_ENV: environment for events without eventMetadata.env.')
param defaultEnv string = ''

@description('ENVIRONMENTS: { "<env>": { "clusters": [...], "objects": [...] } }, stored as JSON.')
param environments object = {}

@description('GATE_TIMEOUT_MINUTES: a waiting gate fails after this long.')
@minValue(1)
@maxValue(4320)
param gateTimeoutMinutes int = 60

@description('GATE_FAILURE_GRACE_SECONDS: how long a failed cluster may recover before the gate fails.')
@minValue(0)
@maxValue(86400)
param gateFailureGraceSeconds int = 0

@description('PR_NUMBER_PATTERNS: regexes that find the PR number in a merge commit message; empty: the code\'s defaults.')
param prNumberPatterns array = []

@description('LEGACY_CALLBACK_ENVIRONMENT: honour the existing gitops-connector callback-task-id PR property (completed, deployed PRs only), always for this environment; empty: never read.')
param legacyCallbackEnvironment string = ''

@description('GATE_USE_JOB_TOKEN: complete gates with the pipeline job token instead of the identity.')
param gateUseJobToken bool = false

@description('STATE_TABLE_PREFIX: prefix of the state tables in the app\'s storage account.')
param stateTablePrefix string = 'gitops'

@description('STATE_RETENTION_DAYS: days before finished deployment state, ledgers, facts and finished gates are deleted by the daily cleanup.')
@minValue(1)
@maxValue(3650)
param stateRetentionDays int = 30

@description('CLUSTER_REPORT_WINDOW_DAYS: days a cluster of an environment not in ENVIRONMENTS stays expected after its last report.')
@minValue(1)
@maxValue(365)
param clusterReportWindowDays int = 3

@description('Storage account of the Spektate tables (existing); empty: no Spektate updates.')
param spektateStorageAccountName string = ''

@description('Resource group of the Spektate storage account.')
param spektateResourceGroupName string = resourceGroup().name

@description('Subscription of the Spektate storage account.')
param spektateSubscriptionId string = subscription().subscriptionId

@description('SPEKTATE_TABLE: Spektate table name.')
param spektateTable string = 'flux'

@description('SPEKTATE_DEPLOYMENTS_TABLE: Spektate deployments table name.')
param spektateDeploymentsTable string = ''

@description('SPEKTATE_PARTITION_KEY: partition key of the Spektate rows.')
param spektatePartitionKey string = ''

@description('SUBSCRIBERS: URLs that receive a copy of each processed event.')
param subscribers array = []

@description('OTEL_EXPORTER_OTLP_ENDPOINT: extra OTLP endpoint for traces; empty: Application Insights only.')
param otlpEndpoint string = ''

@description('Keyless pipelines (off when empty): client id of the Azure service connection whose Entra token AzureFunction@2 presents. Turns on App Service Authentication for the pipeline-facing routes (modules/pipeline-auth.bicep). Function keys stay the default.')
param pipelineClientId string = ''

@description('Keyless pipelines: the token audience the service connection requests (Application ID URI of the app registration).')
param pipelineAuthAudience string = ''

@description('Keyless pipelines: client id of the app registration people sign in to (Entra) for the on-call pages /api/ui (UI_CLIENT_ID). Empty: only the service connection passes App Service Authentication.')
param uiClientId string = ''

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

var token = toLower(uniqueString(resourceGroup().id, baseName))
var prefix = toLower(baseName)
var appName = empty(functionAppName) ? 'func-${prefix}-${token}' : functionAppName
var names = {
  identity: 'id-${prefix}-${token}'
  plan: 'plan-${prefix}-${token}'
  storage: take('st${prefix}${token}', 24)
  serviceBus: 'sb-${prefix}-${token}'
  keyVault: take('kv-${prefix}-${token}', 24)
  logAnalytics: 'log-${prefix}-${token}'
  appInsights: 'appi-${prefix}-${token}'
}
var deploymentContainerName = 'app-package'
var secretNames = {
  fluxClusterKeys: 'flux-cluster-keys'
  fluxHmacKey: 'flux-hmac-key'
  argocdInstances: 'argocd-instances'
  azdoPat: 'azdo-pat'
  azdoHookSecret: 'azdo-hook-secret'
  argocdWebhookSecret: 'argocd-webhook-secret'
  subscribersHmacKey: 'subscribers-hmac-key'
}

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

// The app's identity; add its principal to Azure DevOps (see the outputs and docs/deploy.md).
resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: names.identity
  location: location
  tags: tags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    logAnalyticsName: names.logAnalytics
    appInsightsName: names.appInsights
    retentionInDays: logRetentionInDays
    principalId: identity.properties.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: tags
    name: names.storage
    skuName: storageSkuName
    deploymentContainerName: deploymentContainerName
    principalId: identity.properties.principalId
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  params: {
    location: location
    tags: tags
    namespaceName: names.serviceBus
    queueName: serviceBusQueueName
    duplicateDetectionWindow: duplicateDetectionWindow
    maxDeliveryCount: maxDeliveryCount
    lockDuration: lockDuration
    messageTimeToLive: messageTimeToLive
    principalId: identity.properties.principalId
    grantManageForScaling: serviceBusGrantManageForScaling
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    tags: tags
    name: names.keyVault
    principalId: identity.properties.principalId
    secretNames: secretNames
    fluxClusterKeys: fluxClusterKeys
    fluxHmacKey: fluxHmacKey
    argocdInstances: argocdInstances
    azdoPat: azdoPat
    azdoHookSecret: azdoHookSecret
    argocdWebhookSecret: argocdWebhookSecret
    subscribersHmacKey: subscribersHmacKey
  }
}

module spektateAccess 'modules/spektate-access.bicep' = if (!empty(spektateStorageAccountName)) {
  name: 'spektate-access'
  scope: resourceGroup(spektateSubscriptionId, spektateResourceGroupName)
  params: {
    storageAccountName: spektateStorageAccountName
    principalId: identity.properties.principalId
  }
}

// ---------------------------------------------------------------------------------------------
// The connector's app settings. Every name the code reads (connector.settings.setting_names())
// is here, except the connection-string forms meant for local runs only (ServiceBusConnection,
// AzureWebJobsStorage, STATE_STORAGE, SPEKTATE_STORAGE): in Azure the identity-based forms are
// used. tests/unit/test_infra.py holds this contract. Host settings are in modules/functionapp.bicep.
// ---------------------------------------------------------------------------------------------

var kvRefPrefix = '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.vaultUri}secrets/'

var connectorSettings = concat([
  // azure-identity (ManagedIdentityCredential / DefaultAzureCredential) reads AZURE_CLIENT_ID.
  {
    name: 'AZURE_CLIENT_ID'
    value: identity.properties.clientId
  }
  // Ingest (the Flux keys are below, each set only when given)
  // Never in Azure: the webhook is on the internet and a key is required.
  {
    name: 'FLUX_ALLOW_UNSIGNED'
    value: 'false'
  }
  {
    name: 'DEFAULT_CLUSTER'
    value: defaultCluster
  }
  {
    name: 'DEFAULT_ENV'
    value: defaultEnv
  }
  // Service Bus, identity-based (the trigger's connection prefix and the SDK sender).
  {
    name: 'ServiceBusConnection__fullyQualifiedNamespace'
    value: serviceBus.outputs.fullyQualifiedNamespace
  }
  {
    name: 'ServiceBusConnection__credential'
    value: 'managedidentity'
  }
  {
    name: 'ServiceBusConnection__clientId'
    value: identity.properties.clientId
  }
  {
    name: 'SERVICEBUS_QUEUE'
    value: serviceBus.outputs.queueName
  }
  // State tables in the app's own storage account, identity-based.
  {
    name: 'STATE_STORAGE__accountUrl'
    value: storage.outputs.tableEndpoint
  }
  {
    name: 'STATE_TABLE_PREFIX'
    value: stateTablePrefix
  }
  {
    name: 'STATE_RETENTION_DAYS'
    value: string(stateRetentionDays)
  }
  {
    name: 'CLUSTER_REPORT_WINDOW_DAYS'
    value: string(clusterReportWindowDays)
  }
  // Azure DevOps
  {
    name: 'AZDO_ORG_URL'
    value: azdoOrgUrl
  }
  {
    name: 'AZDO_PROJECT'
    value: azdoProject
  }
  {
    name: 'AZDO_GITOPS_REPO'
    value: azdoGitopsRepo
  }
  {
    name: 'AZDO_PR_REPO'
    value: azdoPrRepo
  }
  {
    name: 'AZDO_API_VERSION'
    value: azdoApiVersion
  }
  {
    name: 'AZDO_DRY_RUN'
    value: azdoDryRun ? 'true' : 'false'
  }
  {
    name: 'STATUS_GENRE'
    value: statusGenre
  }
  {
    name: 'STATUS_TARGET_URL'
    value: statusTargetUrl
  }
  // Environments and gates
  {
    name: 'ENVIRONMENTS'
    value: string(environments)
  }
  {
    name: 'GATE_TIMEOUT_MINUTES'
    value: string(gateTimeoutMinutes)
  }
  {
    name: 'GATE_FAILURE_GRACE_SECONDS'
    value: string(gateFailureGraceSeconds)
  }
  {
    name: 'LEGACY_CALLBACK_ENVIRONMENT'
    value: legacyCallbackEnvironment
  }
  {
    name: 'GATE_USE_JOB_TOKEN'
    value: gateUseJobToken ? 'true' : 'false'
  }
  // Keyless pipelines: the app checks the caller again (connector/app/functions/easyauth.py); '' = keys.
  {
    name: 'PIPELINE_CLIENT_ID'
    value: pipelineClientId
  }
  // Keyless mode: people sign in to the on-call pages (/api/ui) through this app registration.
  {
    name: 'UI_CLIENT_ID'
    value: uiClientId
  }
  // Spektate and subscribers
  {
    name: 'SPEKTATE_TABLE'
    value: spektateTable
  }
  {
    name: 'SPEKTATE_DEPLOYMENTS_TABLE'
    value: spektateDeploymentsTable
  }
  {
    name: 'SPEKTATE_PARTITION_KEY'
    value: spektatePartitionKey
  }
  {
    name: 'SUBSCRIBERS'
    value: string(subscribers)
  }
], empty(prNumberPatterns) ? [] : [
  // Only when given: an empty list would switch off the code's default patterns.
  {
    name: 'PR_NUMBER_PATTERNS'
    value: string(prNumberPatterns)
  }
], empty(spektateStorageAccountName) ? [] : [
  {
    name: 'SPEKTATE_STORAGE__accountUrl'
    value: 'https://${spektateStorageAccountName}.table.${environment().suffixes.storage}'
  }
], empty(otlpEndpoint) ? [] : [
  // Only when given: an empty value would be read as an endpoint by OpenTelemetry SDKs.
  {
    name: 'OTEL_EXPORTER_OTLP_ENDPOINT'
    value: otlpEndpoint
  }
], empty(azdoPat) ? [] : [
  {
    name: 'AZDO_PAT'
    value: '${kvRefPrefix}${secretNames.azdoPat}/)'
  }
], empty(azdoHookSecret) ? [] : [
  {
    name: 'AZDO_HOOK_SECRET'
    value: '${kvRefPrefix}${secretNames.azdoHookSecret}/)'
  }
], empty(fluxClusterKeys) ? [] : [
  {
    name: 'FLUX_CLUSTER_KEYS'
    value: '${kvRefPrefix}${secretNames.fluxClusterKeys}/)'
  }
], empty(fluxHmacKey) ? [] : [
  {
    name: 'FLUX_HMAC_KEY'
    value: '${kvRefPrefix}${secretNames.fluxHmacKey}/)'
  }
], empty(argocdInstances) ? [] : [
  {
    name: 'ARGOCD_INSTANCES'
    value: '${kvRefPrefix}${secretNames.argocdInstances}/)'
  }
], empty(argocdWebhookSecret) ? [] : [
  {
    name: 'ARGOCD_WEBHOOK_SECRET'
    value: '${kvRefPrefix}${secretNames.argocdWebhookSecret}/)'
  }
], empty(subscribersHmacKey) ? [] : [
  {
    name: 'SUBSCRIBERS_HMAC_KEY'
    value: '${kvRefPrefix}${secretNames.subscribersHmacKey}/)'
  }
])

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    tags: tags
    planName: names.plan
    appName: appName
    identityId: identity.id
    identityClientId: identity.properties.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    appInsightsName: monitoring.outputs.appInsightsName
    pythonVersion: pythonVersion
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    connectorSettings: connectorSettings
  }
}

module pipelineAuth 'modules/pipeline-auth.bicep' = if (!empty(pipelineClientId)) {
  name: 'pipeline-auth'
  params: {
    appName: functionApp.outputs.name
    pipelineClientId: pipelineClientId
    audience: pipelineAuthAudience
    uiClientId: uiClientId
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs: names and URLs only. Function keys are fetched with the CLI (docs/deploy.md).
// ---------------------------------------------------------------------------------------------

var hostName = functionApp.outputs.defaultHostName

output functionAppName string = functionApp.outputs.name
output functionAppHostName string = hostName
@description('Flux Provider address, without its key: append ?code=<function key>.')
output fluxWebhookUrl string = 'https://${hostName}/api/flux'
@description('Argo CD webhook service url, without its key: append ?code=<function key>.')
output argocdWebhookUrl string = 'https://${hostName}/api/argocd'
@description('URL of the gate registration (agentless pipeline task), without its key.')
output gateUrl string = 'https://${hostName}/api/gates'
@description('URL of the Azure DevOps service hook, without its key.')
output devopsHookUrl string = 'https://${hostName}/api/devops/events'
@description('Object id of the app identity (Azure DevOps: add this service principal).')
output identityPrincipalId string = identity.properties.principalId
@description('Client (application) id of the app identity.')
output identityClientId string = identity.properties.clientId
output keyVaultName string = keyVault.outputs.name
output serviceBusNamespace string = serviceBus.outputs.fullyQualifiedNamespace
output serviceBusQueue string = serviceBus.outputs.queueName
output storageAccountName string = storage.outputs.name
output appInsightsName string = monitoring.outputs.appInsightsName
