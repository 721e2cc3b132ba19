// A line chart on a canvas, sized for the device's pixel ratio: enough for live dashboards.

export interface Series {
  values: number[]
  color: string
  /** Fill the area under the line. */
  fill?: boolean
}

export interface ChartOptions {
  /** Fixed bounds; by default the data's, with some room. */
  min?: number
  max?: number
  /** How many points the x axis holds (the newest on the right). */
  points: number
  format?: (value: number) => string
}

export function drawLineChart (canvas: HTMLCanvasElement, series: Series[], options: ChartOptions): void {
  const context = fitCanvas(canvas)
  const { width, height } = canvas.getBoundingClientRect()
  const all = series.flatMap((s) => s.values)
  let min = options.min ?? Math.min(...all)
  let max = options.max ?? Math.max(...all)
  if (!Number.isFinite(min) || !Number.isFinite(max)) { min = 0; max = 1 }
  if (max - min < 1e-9) { max += 1; min -= options.min === undefined ? 1 : 0 }
  const pad = { left: 44, right: 8, top: 8, bottom: 18 }
  const plotWidth = width - pad.left - pad.right
  const plotHeight = height - pad.top - pad.bottom
  const x = (i: number): number => pad.left + (plotWidth * i) / Math.max(1, options.points - 1)
  const y = (v: number): number => pad.top + plotHeight * (1 - (v - min) / (max - min))
  const format = options.format ?? ((v: number) => v.toFixed(0))

  context.clearRect(0, 0, width, height)
  context.font = '11px system-ui, sans-serif'
  context.fillStyle = '#6b7385'
  context.strokeStyle = '#e2e6ee'
  context.lineWidth = 1
  for (let i = 0; i <= 4; i++) {
    const value = min + ((max - min) * i) / 4
    const py = Math.round(y(value)) + 0.5
    context.beginPath()
    context.moveTo(pad.left, py)
    context.lineTo(width - pad.right, py)
    context.stroke()
    context.fillText(format(value), 4, py + 4)
  }
  context.fillText(`${options.points} s ago`, pad.left, height - 4)
  context.fillText('now', width - pad.right - 22, height - 4)

  for (const { values, color, fill } of series) {
    if (values.length === 0) continue
    const offset = options.points - values.length
    context.beginPath()
    values.forEach((v, i) => (i === 0 ? context.moveTo(x(offset + i), y(v)) : context.lineTo(x(offset + i), y(v))))
    context.strokeStyle = color
    context.lineWidth = 2
    context.stroke()
    if (fill === true) {
      context.lineTo(x(offset + values.length - 1), y(min))
      context.lineTo(x(offset), y(min))
      context.closePath()
      context.globalAlpha = 0.12
      context.fillStyle = color
      context.fill()
      context.globalAlpha = 1
    }
  }
}

/** Matches the canvas's pixels to its CSS size and returns a context drawing in CSS pixels. */
export function fitCanvas (canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  const ratio = window.devicePixelRatio || 1
  const { width, height } = canvas.getBoundingClientRect()
  const w = Math.max(1, Math.round(width * ratio))
  const h = Math.max(1, Math.round(height * ratio))
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w
    canvas.height = h
  }
  const context = canvas.getContext('2d')
  if (context === null) throw new Error('no 2D canvas context')
  context.setTransform(ratio, 0, 0, ratio, 0, 0)
  return context
}
