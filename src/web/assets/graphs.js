import { bytes, colourOf, el, shortId } from './common.js'

const SVG = 'http://www.w3.org/2000/svg'
const svg = (tag, attrs) => {
  const e = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v))
  return e
}

/** A small line of the last minutes' values (oldest left), with the latest as text; a gap where a peer did not say. */
function spark (values, { colour, spanS, ages, format, floor = 0 }) {
  const w = 140
  const h = 32
  const known = values.filter(v => v !== undefined)
  const top = Math.max(floor, ...known) || 1
  const line = svg('polyline', { fill: 'none', stroke: colour, 'stroke-width': 1.5, points: values.map((v, i) => v === undefined ? '' : `${(w * (1 - ages[i] / spanS)).toFixed(1)},${(h - 2 - (h - 4) * v / top).toFixed(1)}`).filter(Boolean).join(' ') })
  const graph = svg('svg', { width: w, height: h, viewBox: `0 0 ${w} ${h}`, class: 'spark' })
  graph.append(svg('rect', { x: 0, y: 0, width: w, height: h, fill: '#f5f6f8' }), line)
  const latest = known.at(-1)
  return el('td', { class: 'spark-cell', title: known.length > 0 ? `highest ${format(Math.max(...known))} over the last ${Math.round(Math.max(...ages) / 60) || 1} min` : 'not said yet' }, graph, el('span', { class: 'spark-value' }, latest === undefined ? '?' : format(latest)))
}

/** Each peer's CPU, memory and tiles per second over the last minutes, from the samples this peer keeps. */
export function renderGraphs (tbody, samples, self) {
  const spanS = 600
  tbody.replaceChildren(...Object.entries(samples.peers).map(([id, rows]) => {
    const ages = rows.map(r => r.ageS)
    const colour = colourOf(id)
    return el('tr', {},
      el('td', { title: id }, el('span', { style: { color: colour } }, '■ '), shortId(id), id === self ? ' (this peer)' : ''),
      spark(rows.map(r => r.cpu), { colour, spanS, ages, format: v => `${Math.round(v)}%`, floor: 100 }),
      spark(rows.map(r => r.rssBytes), { colour, spanS, ages, format: bytes }),
      spark(rows.map(r => r.tilesPerS), { colour, spanS, ages, format: v => `${v.toFixed(1)}/s`, floor: 1 }))
  }))
}
