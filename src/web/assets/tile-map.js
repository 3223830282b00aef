import { colourOf, el, shortId } from './common.js'

/**
 * The map of a job's work: a tiled image's tiles over a thumbnail of the
 * image, each filling in with its peer's colour as it comes back; a batch's
 * images as squares. The legend counts each peer's share.
 */
export class TileMap {
  constructor (map, legend) {
    this.map = map
    this.legend = legend
    this.cells = []
    this.perPhase = Infinity
    this.byPeer = new Map()
    this.overImage = false
    map.replaceChildren()
    legend.replaceChildren()
    map.className = ''
    Object.assign(map.style, { backgroundImage: '', aspectRatio: '', gridTemplateColumns: '', gridTemplateRows: '', maxWidth: '' })
  }

  /** A tiled image: its grid, tile edges where the tiles' are (the last row and column may be narrower), over its thumbnail. */
  tiles ({ width, height, tileSize, tiles }, thumbnail) {
    const cols = Math.ceil(width / tileSize)
    const rows = Math.ceil(height / tileSize)
    const track = (n, size) => Array.from({ length: n }, (_, i) => `${Math.min(tileSize, size - i * tileSize)}fr`).join(' ')
    this.perPhase = tiles
    this.overImage = true
    this.map.className = 'over-image'
    Object.assign(this.map.style, { backgroundImage: `url("${thumbnail}")`, aspectRatio: `${width} / ${height}`, gridTemplateColumns: track(cols, width), gridTemplateRows: track(rows, height), maxWidth: `${Math.min(720, Math.max(240, width))}px` })
    this.grid(cols * rows)
  }

  /** A batch: a square for each image, in the order they are done. */
  images (count) {
    const cols = Math.ceil(Math.sqrt(count * 2))
    Object.assign(this.map.style, { gridTemplateColumns: `repeat(${cols}, minmax(4px, 1fr))`, maxWidth: `${Math.min(100, cols * 3)}%` })
    this.grid(count)
  }

  grid (count) {
    this.cells = Array.from({ length: count }, () => el('div'))
    this.map.replaceChildren(...this.cells)
  }

  paint (index, peer) {
    const cell = this.cells[index % this.perPhase]
    if (cell === undefined) return
    // Over the image, a tint that lets the image show through.
    cell.style.background = this.overImage ? colourOf(peer).replace(')', ' / 0.3)') : colourOf(peer)
    cell.title = `done by ${shortId(peer)}`
    this.byPeer.set(peer, (this.byPeer.get(peer) ?? 0) + 1)
    this.legend.replaceChildren(...[...this.byPeer].map(([p, n]) => el('span', { title: p }, el('i', { style: { background: colourOf(p) } }), `${shortId(p)}: ${n}`)))
  }

  fail (index) {
    this.cells[index]?.classList.add('failed')
  }
}
