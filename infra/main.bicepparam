// Example parameters for infra/main.bicep (contoso's values). With `az deployment`, copy it
// (e.g. to infra/prod.bicepparam), edit the copy and deploy that, as docs/deploy.md step 2 shows;
// `azd up` reads this file itself (azure.yaml), so with azd edit the values here:
//
//   export FLUX_HMAC_KEY='<the key in the Flux Secret>'      # required
//   export AZDO_HOOK_SECRET='<service hook secret>'          # optional
//   az deployment group create -g "$RG" -f infra/main.bicep -p infra/prod.bicepparam
//
// Secrets are never written here: they are read from environment variables when the file is
// compiled (readEnvironmentVariable), stored in Key Vault by the template, and referenced by
// the app settings. Parameters left out keep the defaults described in main.bicep.
using './main.bicep'

// --- General ------------------------------------------------------------------------------
// Short lowercase prefix of the generated resource names.
param baseName = 'gitops'
// Function app name, i.e. host name <name>.azurewebsites.net; '' derives one from baseName.
param functionAppName = ''
param pythonVersion = '3.11'
// Flex Consumption instance size (512, 2048 or 4096 MB) and scale-out ceiling (40-1000). 512
// holds the measured peak with margin and bills a quarter of 2048 (docs/cost.md).
param instanceMemoryMB = 512
param maximumInstanceCount = 40
param tags = {
  app: 'flux-azdo-connector'
}

// --- Service Bus queue ----------------------------------------------------------------------
// Fixed when the queue is created: changing them later needs a new queue.
param serviceBusQueueName = 'flux-events'
param duplicateDetectionWindow = 'PT1H'
param maxDeliveryCount = 5
param lockDuration = 'PT1M'
param messageTimeToLive = 'P1D'

// --- Secrets (from the environment, never literal) ------------------------------------------
// One key per cluster (docs/security.md): export FLUX_CLUSTER_KEYS='{"dev-1":"…","prod-eu":"…"}'.
param fluxClusterKeys = readEnvironmentVariable('FLUX_CLUSTER_KEYS', '')
// The shared key of older installs (any cluster can speak for all); leave unset on new ones.
param fluxHmacKey = readEnvironmentVariable('FLUX_HMAC_KEY', '')
// Leave unset to authenticate to Azure DevOps with the managed identity only (recommended).
param azdoPat = readEnvironmentVariable('AZDO_PAT', '')
param azdoHookSecret = readEnvironmentVariable('AZDO_HOOK_SECRET', '')
param subscribersHmacKey = readEnvironmentVariable('SUBSCRIBERS_HMAC_KEY', '')
// Argo CD users: the webhook's shared secret (docs/argocd.md); unset: /api/argocd answers 503.
param argocdWebhookSecret = readEnvironmentVariable('ARGOCD_WEBHOOK_SECRET', '')
// One secret per Argo CD instance, bound to its clusters (docs/argocd.md); preferred.
param argocdInstances = readEnvironmentVariable('ARGOCD_INSTANCES', '')

// --- Azure DevOps ---------------------------------------------------------------------------
param azdoOrgUrl = 'https://dev.azure.com/contoso'
param azdoProject = 'platform'
// The manifests (HLD) repository Flux pulls; PRs live there too unless azdoPrRepo is set.
param azdoGitopsRepo = 'manifests'
param azdoPrRepo = ''
param statusGenre = 'flux'
param statusTargetUrl = ''

// --- Environments and gates -----------------------------------------------------------------
// Every cluster of an environment must report the commit healthy before its gate completes.
// Cluster names are the eventMetadata.cluster of each cluster's Flux Alert.
param environments = {
  dev: {
    clusters: [
      'dev-1'
    ]
  }
  prod: {
    clusters: [
      'prod-eu'
      'prod-us'
    ]
  }
}
param gateTimeoutMinutes = 60
param gateFailureGraceSeconds = 0
// Regexes that find the PR number in merge commit messages; [] keeps the built-in patterns.
param prNumberPatterns = []

// --- Spektate (optional) --------------------------------------------------------------------
// An existing storage account with the Spektate tables; the identity gets Table Data
// Contributor on it. '' switches Spektate updates off.
param spektateStorageAccountName = ''
param spektateTable = 'flux'

// --- Keyless pipelines (optional; docs/pipelines.md) ----------------------------------------
// The Azure service connection's client id turns on App Service Authentication for the pipeline
// routes; '' keeps function keys.
param pipelineClientId = ''
param pipelineAuthAudience = ''
// People's Entra sign-in to the on-call pages (/api/ui) in keyless mode: the pages' app
// registration; '' = only the service connection.
param uiClientId = ''
