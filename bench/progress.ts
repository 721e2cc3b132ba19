// One progress line on stderr: which target and scenario run, in what phase, since when.
// On a terminal it is redrawn in place; in a log it is one line per step.
import { duration } from './format.js'

export class Progress {
  private readonly startedAt = performance.now()
  private stepStartedAt = performance.now()
  private step = ''
  private phase = ''
  private readonly timer: NodeJS.Timeout | null
  private readonly tty = process.stderr.isTTY === true

  constructor () {
    this.timer = this.tty ? setInterval(() => this.draw(), 250) : null
    this.timer?.unref()
  }

  /** A new target/scenario step. */
  begin (step: string): void {
    this.step = step
    this.phase = ''
    this.stepStartedAt = performance.now()
    if (this.tty) this.draw()
    else process.stderr.write(`${this.line()}\n`)
  }

  setPhase (phase: string): void {
    this.phase = phase
  }

  /** A message that stays (skips, failures). */
  note (message: string): void {
    process.stderr.write(`${this.tty ? '\r\x1b[K' : ''}${message}\n`)
  }

  end (): void {
    if (this.timer !== null) clearInterval(this.timer)
    if (this.tty) process.stderr.write('\r\x1b[K')
  }

  private line (): string {
    const now = performance.now()
    const phase = this.phase === '' ? '' : ` · ${this.phase}`
    return `bench ${duration(now - this.startedAt)} · ${this.step}${phase} (${duration(now - this.stepStartedAt)})`
  }

  private draw (): void {
    process.stderr.write(`\r\x1b[K${this.line()}`)
  }
}
