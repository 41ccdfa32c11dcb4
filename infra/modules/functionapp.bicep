// The function app on the Flex Consumption plan (FC1), Linux, Python. Runs as a user-assigned
// identity for everything: deployment package, host storage, Service Bus, telemetry and Key Vault
// references. The host-level settings (identity-based storage, telemetry) are added here; the
// connector's own settings come in through `connectorSettings`.

@description('Azure region.')
param location string

@description('Tags for every resource (azd-service-name is added to the app).')
param tags object = {}

@description('Flex Consumption plan name.')
param planName string

@description('Function app name (globally unique host name).')
param appName string

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client (application) id of that identity.')
param identityClientId string

@description('Storage account for AzureWebJobsStorage and the deployment package.')
param storageAccountName string

@description('Blob endpoint of that account, e.g. https://<account>.blob.core.windows.net/')
param storageBlobEndpoint string

@description('Container that holds the deployment package.')
param deploymentContainerName string

@description('Application Insights component name.')
param appInsightsName string

// The package (`make package`) and its lock are built for 3.11 only: its compiled wheels load
// on no other version.
@description('Python version of the Flex runtime.')
@allowed([
  '3.11'
])
param pythonVersion string = '3.11'

@description('Memory per instance in MB.')
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

@description('The connector\'s app settings: array of { name, value }.')
param connectorSettings array

@description('Name of the azd service (tag azd-service-name, used by `azd deploy`).')
param azdServiceName string = 'api'

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// Settings read by the Functions host and the Python worker, not by the connector's code.
var hostSettings = [
  // Identity-based host storage (leases, timers); never a connection string on Flex.
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storageAccountName
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identityClientId
  }
  // Export to Application Insights: the host with its own SDK (host.json samples it; in
  // telemetryMode OpenTelemetry the host's traces cannot be sampled, azure-functions-host#11496);
  // the app with Azure Monitor's exporter and the identity (connector/telemetry.py; no distro).
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsights.properties.ConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'Authorization=AAD;ClientId=${identityClientId}'
  }
  {
    name: 'PYTHON_ENABLE_OPENTELEMETRY'
    value: 'true'
  }
  // The app's traces, rate limited (`microsoft.rate_limited`, the Azure Monitor distro's name for
  // it, read by connector/telemetry.py; OTEL_TRACES_SAMPLER_ARG traces per second): with
  // host.json's 0.5 items/s, one record per second and instance (docs/cost.md).
  {
    name: 'OTEL_TRACES_SAMPLER'
    value: 'microsoft.rate_limited'
  }
  {
    name: 'OTEL_TRACES_SAMPLER_ARG'
    value: '0.5'
  }
  // Read by the connector (connector/telemetry.py), set next to the export it keeps quiet: the
  // Azure SDK logs every storage request at INFO, each a billed trace. Raise it to debug only.
  {
    name: 'AZURE_SDK_LOG_LEVEL'
    value: 'WARNING'
  }
  // The connector's per-event records (INFO) are a billed trace per event at fleet rates
  // (docs/cost.md); WARNING keeps every refusal and failure. INFO to debug.
  {
    name: 'CONNECTOR_LOG_LEVEL'
    value: 'WARNING'
  }
]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy is not offered on every Flex region and doubles cost for a webhook that Flux retries
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17: Flux's notification-controller and Azure DevOps cannot present client certificates; requests carry a function key and an HMAC signature
  // checkov:skip=CKV_AZURE_222: the webhooks must be reachable by Flux in the clusters and by Azure DevOps
  // checkov:skip=CKV_AZURE_212: always-ready Flex instances would bill around the clock; instances start per event and Flux retries a webhook that answered 5xx
  // checkov:skip=CKV_AZURE_213: Flex Consumption has no health check feature
  name: appName
  location: location
  tags: union(tags, {
    'azd-service-name': azdServiceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references (@Microsoft.KeyVault(...)) are resolved with this identity.
    keyVaultReferenceIdentity: identityId
    publicNetworkAccess: 'Enabled'
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: concat(hostSettings, connectorSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// No basic (user name/password) publishing: FTP and SCM accept Entra tokens only
// (`func azure functionapp publish`, `az functionapp deployment`, `azd deploy` use those).
resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = app.name
output defaultHostName string = app.properties.defaultHostName
