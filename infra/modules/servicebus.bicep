// Service Bus Standard namespace (Basic has neither sessions nor duplicate detection) and the
// queue between the ingest function and the processor. Entra-only: SAS keys are disabled, so
// no connection string exists to leak.

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('Namespace name (6-50 characters, globally unique).')
@minLength(6)
@maxLength(50)
param namespaceName string

@description('Queue name (app setting SERVICEBUS_QUEUE).')
param queueName string

@description('Duplicate detection window (ISO 8601, 20 s to 7 days).')
param duplicateDetectionWindow string

@description('Deliveries before a message is dead-lettered.')
@minValue(1)
@maxValue(100)
param maxDeliveryCount int

@description('Peek-lock (and session lock) duration (ISO 8601, at most PT5M).')
param lockDuration string

@description('Time to live of a queued event (ISO 8601); expired events are dead-lettered.')
param messageTimeToLive string

@description('Principal (object) id of the function app identity.')
param principalId string

@description('Also grant Azure Service Bus Data Owner on the queue, which lets the scale controller read the queue length (more accurate scaling).')
param grantManageForScaling bool = false

// Azure Service Bus Data Sender:   69a216fc-b8fb-44d8-bc22-1f3c2cd27a39 (ingest function sends)
var serviceBusDataSender = '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
// Azure Service Bus Data Receiver: 4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0 (queue trigger receives)
var serviceBusDataReceiver = '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
// Azure Service Bus Data Owner:    090c5cfd-751d-490a-894a-3ce6f1109419 (optional, see grantManageForScaling)
var serviceBusDataOwner = '090c5cfd-751d-490a-894a-3ce6f1109419'

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    // Standard has no private endpoints; access is Entra-only (disableLocalAuth).
    publicNetworkAccess: 'Enabled'
  }
}

// Queue settings, and why:
// - requiresSession: one session per Flux object (cluster/kind/namespace/name), so the events
//   of an object are processed in order even when the app scales out (creation-time setting).
// - requiresDuplicateDetection + duplicateDetectionHistoryTimeWindow: the ingest function sets
//   MessageId to a hash of the event body. Flux retries a failed webhook for ~15-30 s, and
//   Alerts re-send identical bodies while an object stays in the same state (e.g. every
//   reconciliation of a failing Kustomization), so a window well beyond the retry horizon
//   (default PT1H) drops most repeats at the broker. A longer window costs throughput, and the
//   processor is idempotent anyway (creation-time setting).
// - maxDeliveryCount (default 5): an abandoned message is redelivered at once, without
//   backoff. Transient Azure DevOps failures are retried by the processor itself (a scheduled
//   copy with backoff), so a delivery only fails for host-level reasons (instance recycled,
//   lock lost) or for a poison message. A handful of tries rides out the former and moves the
//   latter to the dead-letter queue quickly: with sessions, a message that keeps failing holds
//   back every later event of the same object.
// - lockDuration (default PT1M): the host renews the lock while a handler runs
//   (maxAutoLockRenewalDuration in host.json) and a handler takes seconds, so the lock only
//   matters when an instance dies mid-message; the message (with sessions, the whole session)
//   then stays locked until the lock expires. One minute keeps that stall short without
//   needless renewals.
// - defaultMessageTimeToLive + deadLetteringOnMessageExpiration: expired events go to the
//   dead-letter queue (<queue>/$deadletterqueue) for inspection and redrive, never vanish.
resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: queueName
  properties: {
    requiresSession: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    maxDeliveryCount: maxDeliveryCount
    lockDuration: lockDuration
    defaultMessageTimeToLive: messageTimeToLive
    deadLetteringOnMessageExpiration: true
    enableBatchedOperations: true
    enablePartitioning: false
    maxSizeInMegabytes: 1024
  }
}

// Roles on the queue, not the namespace: the identity can use this queue only.
resource sender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(queue.id, principalId, serviceBusDataSender)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource receiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(queue.id, principalId, serviceBusDataReceiver)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiver)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource owner 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantManageForScaling) {
  name: guid(queue.id, principalId, serviceBusDataOwner)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output namespaceName string = namespace.name
// Host name only (e.g. <ns>.servicebus.windows.net), as identity-based connections expect.
output fullyQualifiedNamespace string = split(split(namespace.properties.serviceBusEndpoint, '//')[1], ':')[0]
output queueName string = queue.name
