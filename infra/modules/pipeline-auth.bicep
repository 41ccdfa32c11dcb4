// Keyless pipelines (optional; main.bicep deploys this only when pipelineClientId is given):
// App Service Authentication (authsettingsV2) in front of the pipeline-facing routes, accepting
// only an Entra token of the pipeline's Azure service connection (AzureFunction@2 with
// workload identity federation). /api/flux (HMAC), /api/argocd (shared secret), /api/health (anonymous),
// /api/devops/events (service hook basic auth) and /api/doctor (master key) are excluded and keep
// working as before.
// Sources: Learn "Authentication and authorization in Azure App Service and Azure Functions"
// (overview-authentication-authorization), "Configure your App Service or Azure Functions app to
// use Microsoft Entra sign-in" (configure-authentication-provider-aad: allowedApplications,
// allowedAudiences), ARM reference Microsoft.Web/sites/config 'authsettingsV2'.
// The app checks X-MS-CLIENT-PRINCIPAL again (connector/app/functions/easyauth.py).

@description('Function app name.')
param appName string

@description('Client (application) id of the service connection\'s identity: the only caller allowed.')
param pipelineClientId string

@description('Audience of the tokens (the Application ID URI or client id of the app registration the service connection requests a token for).')
param audience string

@description('App registration people sign in to for the on-call pages (/api/ui); empty: no sign-in for people. Without a client secret App Service signs people in with an ID token (implicit flow: enable ID tokens on the registration), Learn configure-authentication-provider-aad.')
param uiClientId string = ''

@description('Paths that keep their own authentication.')
param excludedPaths array = [
  '/api/flux'
  '/api/argocd'
  '/api/health'
  '/api/devops/events'
  '/api/doctor'
]

// People signing in to the on-call pages: their ID tokens have the registration as audience and
// as application.
var people = empty(uiClientId) ? [] : [
  uiClientId
]

resource app 'Microsoft.Web/sites@2023-12-01' existing = {
  name: appName
}

resource auth 'Microsoft.Web/sites/config@2023-12-01' = {
  // checkov:skip=CKV_AZURE_66: a sites/config authsettingsV2 resource, not a site: checkov applies site checks to it
  // checkov:skip=CKV_AZURE_63: a sites/config authsettingsV2 resource, not a site: checkov applies site checks to it
  // checkov:skip=CKV_AZURE_222: a sites/config authsettingsV2 resource, not a site: checkov applies site checks to it
  // checkov:skip=CKV_AZURE_80: a sites/config authsettingsV2 resource, not a site: checkov applies site checks to it
  // checkov:skip=CKV_AZURE_13: a sites/config authsettingsV2 resource, not a site: checkov applies site checks to it
  // checkov:skip=CKV_AZURE_88: a sites/config authsettingsV2 resource, not a site: checkov applies site checks to it
  // checkov:skip=CKV_AZURE_65: a sites/config authsettingsV2 resource, not a site: checkov applies site checks to it
  parent: app
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: excludedPaths
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
          clientId: empty(uiClientId) ? null : uiClientId
        }
        validation: {
          allowedAudiences: concat([
            audience
          ], people)
          defaultAuthorizationPolicy: {
            allowedApplications: concat([
              pipelineClientId
            ], people)
          }
        }
      }
    }
  }
}
