// The Prometheus metrics of each worker of a `--workers N` node: the HTTP port is shared, and
// node:cluster hands each new connection to the next worker, so scrapes on new connections
// reach them all in turn.
import { request } from 'node:http'

function scrape (url: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const req = request(url, { agent: false, timeout: 10_000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve(body))
    })
    req.on('error', reject)
    req.on('timeout', () => req.destroy(new Error('scrape timed out')))
    req.end()
  }).catch(() => '')
}

/** One value of `metric` per worker (by its node label), once `workers` of them answered or after enough tries. */
export async function valuePerWorker (httpBase: string, metric: string, workers: number): Promise<Map<string, number>> {
  const byNode = new Map<string, number>()
  // the first sample of the metric, whatever its other labels
  const line = new RegExp(`^${metric}\\{([^}]*)\\} (\\S+)$`, 'm')
  for (let attempt = 0; attempt < workers * 6 && byNode.size < workers; attempt++) {
    const match = line.exec(await scrape(`${httpBase}/metrics`))
    const node = match === null ? undefined : /node="([^"]+)"/.exec(match[1] as string)?.[1]
    if (match !== null && node !== undefined) byNode.set(node, Number(match[2]))
  }
  return byNode
}
