// Key Vault (RBAC mode) for the connector's secrets. App settings point at them with Key Vault
// references, resolved by the app's user-assigned identity (Key Vault Secrets User).
// Secrets are written through ARM (control plane); the deployer needs no data-plane role.

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('Key Vault name (3-24 characters, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Soft-delete retention in days.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

@description('Principal (object) id of the function app identity.')
param principalId string

@description('Secret names in the vault.')
param secretNames object

@secure()
@description('One HMAC key per Flux cluster (JSON, FLUX_CLUSTER_KEYS); empty: not stored.')
param fluxClusterKeys string = ''

@secure()
@description('HMAC key(s) shared by every Flux cluster (comma-separated during rotation); empty: not stored.')
param fluxHmacKey string = ''

@secure()
@description('One secret per Argo CD instance with its clusters (JSON, ARGOCD_INSTANCES); empty: not stored.')
param argocdInstances string = ''

@secure()
@description('Azure DevOps PAT (fallback to the managed identity); empty: not stored.')
param azdoPat string = ''

@secure()
@description('Shared secret of the Azure DevOps service hook; empty: not stored.')
param azdoHookSecret string = ''

@secure()
@description('Shared secret of the Argo CD webhook; empty: not stored.')
param argocdWebhookSecret string = ''

@secure()
@description('HMAC key for signing events forwarded to subscribers; empty: not stored.')
param subscribersHmacKey string = ''

// Key Vault Secrets User: 4633458b-17de-408a-b874-0445c86b69e6 (read secret values)
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: Key Vault references of an app without VNet integration are resolved over the public endpoint; access is RBAC-only
  // checkov:skip=CKV_AZURE_189: same reason: public network access stays enabled
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// Optional secrets: stored only when given (their app settings are set only then, too).
module fluxClusterKeysSecret 'secret.bicep' = if (!empty(fluxClusterKeys)) {
  name: 'secret-flux-cluster-keys'
  params: {
    vaultName: vault.name
    name: secretNames.fluxClusterKeys
    value: fluxClusterKeys
  }
}

module fluxHmacKeySecret 'secret.bicep' = if (!empty(fluxHmacKey)) {
  name: 'secret-flux-hmac-key'
  params: {
    vaultName: vault.name
    name: secretNames.fluxHmacKey
    value: fluxHmacKey
  }
}

module argocdInstancesSecret 'secret.bicep' = if (!empty(argocdInstances)) {
  name: 'secret-argocd-instances'
  params: {
    vaultName: vault.name
    name: secretNames.argocdInstances
    value: argocdInstances
  }
}

module azdoPatSecret 'secret.bicep' = if (!empty(azdoPat)) {
  name: 'secret-azdo-pat'
  params: {
    vaultName: vault.name
    name: secretNames.azdoPat
    value: azdoPat
  }
}

module azdoHookSecretSecret 'secret.bicep' = if (!empty(azdoHookSecret)) {
  name: 'secret-azdo-hook-secret'
  params: {
    vaultName: vault.name
    name: secretNames.azdoHookSecret
    value: azdoHookSecret
  }
}

module argocdWebhookSecretSecret 'secret.bicep' = if (!empty(argocdWebhookSecret)) {
  name: 'secret-argocd-webhook-secret'
  params: {
    vaultName: vault.name
    name: secretNames.argocdWebhookSecret
    value: argocdWebhookSecret
  }
}

module subscribersHmacKeySecret 'secret.bicep' = if (!empty(subscribersHmacKey)) {
  name: 'secret-subscribers-hmac-key'
  params: {
    vaultName: vault.name
    name: secretNames.subscribersHmacKey
    value: subscribersHmacKey
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = vault.name
// e.g. https://<vault>.vault.azure.net/ (with the trailing slash)
output vaultUri string = vault.properties.vaultUri
