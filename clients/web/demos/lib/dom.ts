// Small DOM helpers for the demo pages.

export function byId<T extends HTMLElement = HTMLElement> (id: string): T {
  const element = document.getElementById(id)
  if (element === null) throw new Error(`the page has no #${id}`)
  return element as T
}

/** Creates an element with text and class; children are appended in order. */
export function el<K extends keyof HTMLElementTagNameMap> (tag: K, options: { className?: string, text?: string, title?: string } = {}, ...children: Node[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag)
  if (options.className !== undefined) element.className = options.className
  if (options.text !== undefined) element.textContent = options.text
  if (options.title !== undefined) element.title = options.title
  element.append(...children)
  return element
}

export function timeAgo (ms: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000))
  if (s < 60) return `${s} s ago`
  if (s < 3600) return `${Math.round(s / 60)} min ago`
  return `${Math.round(s / 3600)} h ago`
}

/** A stable color per name, for vehicles and people. */
export function colorFor (name: string): string {
  let hash = 0
  for (const char of name) hash = (hash * 31 + char.charCodeAt(0)) >>> 0
  return `hsl(${hash % 360} 65% 48%)`
}
