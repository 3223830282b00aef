// Shared by the page and the dashboard: how peers, sizes and times are shown.
/** A peer id as the logs and `status` show it (src/log.ts): its last 8 characters. */
export const shortId = id => id.slice(-8)

/** A peer's colour: the same on every page and every reload. */
export function colourOf (peerId) {
  let h = 0
  for (const ch of peerId) h = (h * 31 + ch.charCodeAt(0)) >>> 0
  return `hsl(${h % 360} 70% 50%)`
}

export function seconds (s) {
  if (!Number.isFinite(s)) return '--'
  if (s < 90) return `${Math.round(s)} s`
  if (s < 5400) return `${Math.round(s / 60)} min`
  return `${(s / 3600).toFixed(1)} h`
}

export function bytes (n) {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`
  return `${(n / 1024 / 1024).toFixed(1)} MB`
}

/** An element with text and attributes: no HTML from data is ever parsed. */
export function el (tag, attrs = {}, ...children) {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v
    else if (k === 'style') Object.assign(e.style, v)
    else e.setAttribute(k, v)
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)))
  return e
}

/** The server's error, one line, as the CLI says it. */
export async function errorOf (response) {
  try {
    const body = await response.json()
    return body.message
  } catch {
    return `${response.status} ${response.statusText}`
  }
}
