// Structured JSON logs (pino). Secrets are redacted by key wherever they appear.
import { pino, type Logger } from 'pino'

export type { Logger }

const redactedKeys = ['password', 'token', 'secret', 'authorization', 'privateKey']

export function createLogger (level: string, nodeId: string): Logger {
  return pino({
    level,
    base: { node: nodeId },
    redact: {
      paths: [...redactedKeys, ...redactedKeys.map((key) => `*.${key}`)],
      censor: '[redacted]'
    }
  })
}
