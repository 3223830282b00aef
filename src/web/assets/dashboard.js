import { colourOf, el, errorOf, seconds, shortId } from './common.js'

const $ = id => document.getElementById(id)
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`

function peerCell (id) {
  return el('td', { title: id }, el('span', { style: { color: colourOf(id) } }, '■ '), shortId(id))
}

function render (s) {
  const connected = s.peers.filter(p => p.connected).length
  $('self').className = ''
  $('self').replaceChildren(
    el('div', { title: s.peerId }, el('span', { style: { color: colourOf(s.peerId) } }, '■ '), shortId(s.peerId), ` · tileswarm ${s.version} · up ${seconds(s.upS)} · ${plural(s.slots, 'slot')} · ${s.done} tiles and images done · ${plural(s.heldLeases, 'lease')} held · ${plural(s.activeJobs, 'job')} coordinated here`),
    el('div', { class: 'addrs muted' }, s.addrs.join('  ')),
    connected === 0 ? el('div', { class: 'error' }, 'alone: connected to no other peer; jobs submitted here run on this peer only') : '')
  $('peers-title').textContent = `Peers (${connected} connected)`
  $('peers').replaceChildren(...s.peers.map(p => el('tr', {},
    peerCell(p.peerId),
    el('td', {}, p.connected ? 'connected' : 'gone'),
    el('td', {}, p.slots ?? '?'),
    el('td', {}, p.upS !== undefined ? seconds(p.upS) : '?'),
    el('td', {}, p.done ?? '?'),
    el('td', {}, p.connected ? 'now' : `${seconds(p.lastSeenS)} ago`),
    el('td', { class: 'addrs' }, p.addrs.join('\n')))))
  $('jobs-title').textContent = `Jobs (${s.jobs.filter(j => j.here).length} here, ${s.jobs.filter(j => !j.here).length} elsewhere)`
  $('jobs').replaceChildren(...s.jobs.map(j => {
    const pct = j.total > 0 ? Math.floor(100 * j.done / j.total) : 0
    return el('tr', {},
      el('td', {}, j.jobId),
      el('td', {}, j.kind),
      j.here ? el('td', {}, 'here') : peerCell(j.coordinator),
      el('td', {}, j.phase),
      el('td', {}, el('span', { class: 'bar' }, el('b', { style: { width: `${pct}%` } })), `${j.done}/${j.total}`),
      el('td', {}, seconds(j.ageS)),
      el('td', {}, j.leases !== undefined ? j.leases.expired : '-'),
      el('td', {}, ...Object.entries(j.byPeer ?? {}).map(([p, n]) => el('span', { title: p, style: { color: colourOf(p), marginRight: '8px' } }, `${shortId(p)}: ${n}`))))
  }))
}

async function poll () {
  try {
    const response = await fetch('/api/status')
    if (!response.ok) throw new Error(await errorOf(response))
    render(await response.json())
    $('error').textContent = ''
  } catch (err) {
    $('error').textContent = `cannot reach this peer: ${err.message}`
  }
  setTimeout(() => { void poll() }, 1000)
}

void poll()
