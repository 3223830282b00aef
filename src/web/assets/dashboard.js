import { bytes, colourOf, el, errorOf, seconds, shortId } from './common.js'
import { renderGraphs } from './graphs.js'

const $ = id => document.getElementById(id)
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`

function peerCell (id) {
  return el('td', { title: id }, el('span', { style: { color: colourOf(id) } }, '■ '), shortId(id))
}

/** A peer's tiles and images done: as its last hello said, or, where the jobs coordinated here say more already, theirs (hellos come every few seconds). */
function doneBy (s, peerId, said) {
  let here = 0
  for (const j of s.jobs) if (j.here && j.byPeer !== undefined) here += j.byPeer[peerId] ?? 0
  return said === undefined && here === 0 ? '?' : Math.max(said ?? 0, here)
}

function render (s, swarmJobs) {
  const connected = s.peers.filter(p => p.connected).length
  $('self').className = ''
  $('self').replaceChildren(
    el('div', { title: s.peerId }, el('span', { style: { color: colourOf(s.peerId) } }, '■ '), shortId(s.peerId), ` · tileswarm ${s.version} · up ${seconds(s.upS)} · ${plural(s.slots, 'slot')} · ${s.done} tiles and images done · ${plural(s.heldLeases, 'lease')} held · ${plural(s.activeJobs, 'job')} coordinated here`),
    el('div', { class: 'addrs muted' }, s.addrs.join('  ')),
    connected === 0 ? el('div', { class: 'error' }, 'alone: connected to no other peer; jobs submitted here run on this peer only') : '')
  $('peers-title').textContent = `Peers (${connected} connected)`
  $('peers').replaceChildren(...s.peers.map(p => el('tr', {},
    peerCell(p.peerId),
    el('td', {}, `${p.connected ? 'connected' : 'gone'}${p.scaledBy !== undefined ? ` (started by ${p.scaledBy === s.peerId ? 'this peer' : shortId(p.scaledBy)})` : ''}`),
    el('td', {}, p.slots ?? '?'),
    el('td', {}, p.upS !== undefined ? seconds(p.upS) : '?'),
    el('td', {}, doneBy(s, p.peerId, p.done)),
    el('td', {}, p.connected ? 'now' : `${seconds(p.lastSeenS)} ago`),
    el('td', { class: 'addrs' }, p.addrs.join('\n')))))
  $('jobs-title').textContent = `Jobs (${s.jobs.filter(j => j.here).length} here, ${s.jobs.filter(j => !j.here).length} elsewhere)`
  $('jobs').replaceChildren(...swarmJobs.running.map(j => {
    const pct = j.total > 0 ? Math.floor(100 * j.done / j.total) : 0
    return el('tr', {},
      el('td', { title: `job ${j.jobId}` }, inputText(j)),
      el('td', {}, (j.ops ?? []).join(', ')),
      el('td', {}, j.kind),
      j.here ? el('td', {}, 'here') : peerCell(j.coordinator),
      el('td', {}, j.phase),
      el('td', {}, el('span', { class: 'bar' }, el('b', { style: { width: `${pct}%` } })), `${j.done}/${j.total}`),
      el('td', {}, seconds(j.ageS)),
      el('td', {}, j.leases !== undefined ? j.leases.expired : '-'),
      byPeerCell(j.byPeer),
      submitterCell(j),
      el('td', {}, j.priority ?? '?'),
      el('td', {}, j.cancellable ? cancelButton(j.jobId) : ''))
  }))
  $('finished-title').textContent = `Ended here in the last hour (${swarmJobs.finished.length})`
  $('finished').replaceChildren(...swarmJobs.finished.map(f => el('tr', {},
    el('td', { title: `job ${f.jobId}` }, inputText(f)),
    el('td', {}, (f.ops ?? []).join(', ')),
    el('td', {}, f.kind),
    submitterCell(f),
    el('td', { class: f.outcome === 'done' ? '' : 'error' }, f.outcome),
    el('td', {}, `${f.done}/${f.total}`),
    byPeerCell(f.byPeer),
    el('td', {}, seconds(f.ms / 1000)),
    el('td', {}, `${seconds(f.endedS)} ago`))))
  scaling(s.scaling)
}

/** Tiles (or images) each peer did, in its colour. */
const byPeerCell = byPeer => el('td', {}, ...Object.entries(byPeer ?? {}).map(([p, n]) => el('span', { title: p, style: { color: colourOf(p), marginRight: '8px' } }, `${shortId(p)}: ${n}`)))

/** The client that submitted it, or a peer's web page (`web:` and its id). */
const submitterCell = j => {
  const who = j.submitter ?? j.client
  if (who === undefined) return el('td', {}, '?')
  return who.startsWith('web:') ? el('td', { title: who }, `web page of ${shortId(who.slice(4))}`) : peerCell(who)
}

const inputText = j => [j.inputName, j.inputBytes !== undefined ? bytes(j.inputBytes) : undefined].filter(x => x !== undefined).join(' ') || '?'

/** The operator's Cancel: the job's coordinator ends it (this peer's, or another asked with this page's token). */
function cancelButton (jobId) {
  const button = el('button', { class: 'plain', 'data-job': jobId }, 'Cancel')
  button.addEventListener('click', async () => {
    button.disabled = true
    const response = await fetch(`/api/swarm-jobs/${encodeURIComponent(jobId)}/cancel`, { method: 'POST' })
    $('cancel-error').textContent = response.ok ? '' : `cannot cancel ${jobId}: ${await errorOf(response)}`
  })
  return button
}

/** A peer with --scale-out or --scale-in: the backlog it sees, whether it decides for the swarm, and what it decided. */
function scaling (sc) {
  $('scaling-section').hidden = sc === undefined
  if (sc === undefined) return
  const drain = sc.drainS !== undefined ? `~${seconds(sc.drainS)} to drain at ${sc.ratePerS}/s` : sc.backlog > 0 ? 'rate not known yet' : 'nothing to drain'
  $('scaling').replaceChildren(
    el('div', {}, `backlog ${plural(sc.backlog, 'unit')} · ${drain} · ${plural(sc.slots, 'slot')} · bound ${seconds(sc.boundS)} · ${sc.acting ? 'this peer decides for the swarm' : sc.out ? 'another peer with a scale-out hook (a lower id) decides' : 'scale-in only'}`),
    el('div', {}, `peers started here and up: ${sc.scaledPeers.length === 0 ? 'none' : sc.scaledPeers.map(shortId).join(', ')}`))
  $('decisions').replaceChildren(...sc.decisions.map(d => el('tr', {},
    el('td', {}, `${seconds(d.ageS)} ago`),
    el('td', {}, d.direction),
    el('td', {}, d.peers !== undefined ? d.peers.map(shortId).join(', ') : String(d.count)),
    el('td', {}, d.reason),
    el('td', { class: d.outcome === 'failed' || d.outcome === 'timed out' ? 'error' : '' }, `${d.outcome}${d.message !== undefined ? `: ${d.message}` : ''}`))))
}

/** The graphs move every sample (5 s), not every poll. */
async function pollSamples () {
  try {
    const response = await fetch('/api/peer-samples')
    if (response.ok) {
      const status = await response.json()
      renderGraphs($('graphs'), status, selfId)
    }
  } catch {}
  setTimeout(() => { void pollSamples() }, 5000)
}

let selfId
async function poll () {
  try {
    const [response, jobs] = await Promise.all([fetch('/api/status'), fetch('/api/swarm-jobs')])
    if (!response.ok) throw new Error(await errorOf(response))
    if (!jobs.ok) throw new Error(await errorOf(jobs))
    const s = await response.json()
    selfId = s.peerId
    render(s, await jobs.json())
    $('error').textContent = ''
  } catch (err) {
    $('error').textContent = `cannot reach this peer: ${err.message}`
  }
  setTimeout(() => { void poll()
void pollSamples() }, 1000)
}

void poll()
