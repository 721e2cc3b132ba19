// MQTT over TLS (MQTTS), with the key and certificate files from the config.
import { readFileSync } from 'node:fs'
import { createServer, type Server, type TLSSocket } from 'node:tls'

export interface TlsFiles {
  key: string
  cert: string
  ca?: string | undefined
}

/** Reads the key and certificate files: a missing file fails start-up, not the first client. */
export function readTlsFiles (files: TlsFiles): { key: Buffer, cert: Buffer, ca?: Buffer } {
  return {
    key: readFileSync(files.key),
    cert: readFileSync(files.cert),
    ...(files.ca === undefined ? {} : { ca: readFileSync(files.ca) })
  }
}

export function createTlsListener (files: TlsFiles, noDelay: boolean, onConnection: (socket: TLSSocket) => void): Server {
  return createServer({ ...readTlsFiles(files), noDelay }, onConnection)
}
