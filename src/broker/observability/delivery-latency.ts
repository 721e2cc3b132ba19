// The delivery-latency histogram: from a PUBLISH accepted on this node to its forward to a
// subscriber on this node. The accept time travels with the message (aedes-adapter.ts).
import type { AedesPublishPacket, PublishPacket } from 'aedes'
import { messageStamp, stampMessage } from '../aedes-adapter.js'
import type { BrokerMetrics } from './metrics.js'

export class DeliveryLatency {
  constructor (private readonly metrics: BrokerMetrics, private readonly nodeId: string) {}

  /** A client's message accepted by the broker. */
  accepted (packet: PublishPacket): void {
    stampMessage(packet, performance.now())
  }

  /** A message about to be forwarded to a subscriber. */
  forwarded (packet: AedesPublishPacket): void {
    // a message from another node, or retained and sent on SUBSCRIBE, is not measured
    if (packet.brokerId !== this.nodeId) return
    const acceptedAt = messageStamp(packet)
    if (acceptedAt !== undefined) this.metrics.deliveryLatency.observe((performance.now() - acceptedAt) / 1000)
  }
}
