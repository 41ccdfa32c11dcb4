// One secret in an existing Key Vault. A module of its own so that optional secrets are
// deployed with a conditional module while the secret resource itself stays unconditional.

@description('Name of the existing Key Vault.')
param vaultName string

@description('Secret name.')
param name string

@secure()
@description('Secret value.')
param value string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: an expiry would silently break signature checks or Azure DevOps calls; rotate by redeploying with the new value (FLUX_HMAC_KEY accepts comma-separated keys to overlap)
  parent: vault
  name: name
  properties: {
    value: value
    contentType: 'text/plain'
  }
}
