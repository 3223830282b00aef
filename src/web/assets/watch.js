import { bytes, el, errorOf, seconds, shortId } from './common.js'
import { TileMap } from './tile-map.js'

const $ = id => document.getElementById(id)
/** The browser that submitted a job keeps its cancel key: it may cancel the job after a reload too. */
const keyName = id => `tileswarm-cancel-${id}`
export const keepCancelKey = job => { if (job.cancelKey !== undefined) localStorage.setItem(keyName(job.id), job.cancelKey) }

/** A batch's files, each with its state and why it failed; the first ones done with their before and after (thumbnails made on the peer). */
function fileList (jobId, files) {
  const thumb = (which, i, alt) => el('a', { href: `/api/jobs/${jobId}/thumb/${which}-${i}`, target: '_blank' }, el('img', { src: `/api/jobs/${jobId}/thumb/${which}-${i}`, alt, class: 'thumb' }))
  return el('table', { class: 'files' }, el('tbody', {}, ...files.map((f, i) => el('tr', { class: f.state === 'failed' ? 'failed' : '' },
    el('td', {}, f.preview === true ? el('span', { class: 'pair' }, thumb('in', i, `${f.name} before`), thumb('out', i, `${f.name} after`)) : ''),
    el('td', {}, f.name),
    el('td', {}, f.state === 'done' ? '✓ done' : f.state === 'failed' ? '✗ failed' : f.state),
    el('td', {}, f.reason ?? (f.output !== undefined ? `→ ${f.output}` : ''))))))
}

/** What an ended job shows: its outcome, before and after (thumbnails made on the peer), or its batch's files. */
function ended (end) {
  const took = seconds((end.endedAt - end.createdAt) / 1000)
  if (end.state === 'cancelled') {
    $('status').replaceChildren(el('span', { class: 'error' }, `cancelled after ${took}`))
    return
  }
  if (end.state !== 'done') {
    $('status').replaceChildren(el('span', { class: 'error' }, `failed: ${end.error.message}`))
    if (end.files !== undefined) $('file-list').replaceChildren(fileList(end.id, end.files))
    return
  }
  const failed = (end.files ?? []).filter(f => f.state === 'failed').length
  const what = end.files !== undefined ? `${end.files.length - failed} of ${end.files.length} images processed` : end.result.filename
  $('status').replaceChildren(`done in ${took}: ${what} (${bytes(end.result.bytes)})`, failed > 0 ? el('span', { class: 'error' }, ` · ${failed} failed (listed below, and in the zip's report.txt)`) : '')
  if (end.files !== undefined) $('file-list').replaceChildren(fileList(end.id, end.files))
  if (end.kind === 'image') {
    const stamp = end.endedAt
    $('preview').replaceChildren(
      el('figure', {}, el('img', { src: `/api/jobs/${end.id}/thumb/input`, alt: 'before' }), el('figcaption', {}, 'before')),
      el('figure', {}, el('a', { href: `/api/jobs/${end.id}/result`, target: '_blank' }, el('img', { src: `/api/jobs/${end.id}/thumb/result?t=${stamp}`, alt: 'after' })), el('figcaption', {}, 'after (click for full size)')))
  }
  $('download').href = `/api/jobs/${end.id}/result?download=1`
  $('download').setAttribute('download', end.result.filename)
  $('download-label').textContent = `Download ${end.result.filename}`
  $('download-row').hidden = false
}

/**
 * The live view of one job (one at a time), from its events: every event so
 * far, then each as it comes, so a reload gets the view back. `onEnd` hears
 * the job is over.
 */
export function watch (job, onEnd) {
  $('job').hidden = false
  $('job-title').textContent = `${job.title}: ${job.ops}`
  $('status').textContent = 'uploaded; waiting for the swarm…'
  $('preview').replaceChildren()
  $('file-list').replaceChildren()
  $('log').textContent = ''
  $('download-row').hidden = true
  $('cancel').hidden = job.state !== 'running'
  $('cancel').disabled = false
  const map = new TileMap($('map'), $('legend'))
  let filled = 0
  const log = line => { $('log').textContent += `${line}\n` }
  const rate = (done, total, unit) => {
    const s = (Date.now() - job.createdAt) / 1000
    const perS = s > 0.5 ? done / s : NaN
    const eta = perS > 0 ? (total - done) / perS : NaN
    $('status').textContent = `${done}/${total} ${unit} (${total > 0 ? Math.floor(100 * done / total) : 0}%) · ${Number.isFinite(perS) ? perS.toFixed(1) : '--'} ${unit}/s · ETA ${seconds(eta)}`
  }
  const events = new EventSource(`/api/jobs/${job.id}/events`)
  events.onmessage = msg => {
    const e = JSON.parse(msg.data)
    switch (e.event) {
      case 'accepted':
        map.tiles(e, `/api/jobs/${job.id}/thumb/input`)
        log(`accepted as job ${e.jobId} (the dashboard's and the peers' logs' name for it): ${e.width}x${e.height}, ${e.tiles} tiles of ${e.tileSize} px${e.phases > 1 ? ` in ${e.phases} phases` : ''}`)
        for (const n of e.notes) log(`note: ${n}`)
        break
      case 'progress':
        for (const [peer, tiles] of Object.entries(e.placed ?? {})) for (const t of tiles) map.paint(t, peer)
        rate(e.done, e.total, 'tiles')
        if (e.verify !== undefined) $('status').textContent += ` · ${e.verify.checked} checked${e.verify.disagreements > 0 ? `, ${e.verify.disagreements} disagreed` : ''}`
        break
      case 'done':
        if (e.verify !== undefined) log(`checks: ${e.verify.checked} tiles confirmed by a second peer (${e.verify.extra} extra computations)${e.verify.disagreements > 0 ? `, ${e.verify.disagreements} disagreements settled by a third` : ''}${Object.keys(e.verify.excluded).length > 0 ? `; excluded ${Object.keys(e.verify.excluded).map(shortId).join(', ')}` : ''}`)
        break
      case 'excluded': log(`excluded peer ${shortId(e.peer)}: ${e.wrong > 0 ? 'its result lost a vote against other peers\'' : 'caught giving wrong results in an earlier job'}; what it delivered is computed again`); break
      case 'batch':
        map.images(e.images)
        log(`batch of ${e.images} images`)
        break
      case 'started': log(`coordinated as batch ${e.jobId}`); break
      case 'image': map.paint(filled++, e.by); break
      case 'image-failed':
        map.fail(filled++)
        log(`failed: ${e.input}: ${e.message}`)
        break
      case 'batch-progress': rate(e.done + e.failed, e.total, 'images'); break
      case 'encoding': $('status').textContent = 'every tile is in; the coordinator encodes the result…'; break
      case 'cancelling': $('status').textContent = 'cancelling…'; $('cancel').disabled = true; break
      case 'lost': log(`the coordinator ${shortId(e.coordinator)} was lost (${e.reason}); the job goes on elsewhere`); break
      case 'resumed': log(`resumed on ${e.on}`); break
      case 'recovered': log(`recovered ${e.tiles} finished tiles of ${e.total}`); break
      case 'passed': log(`passed on: ${e.reason}`); break
      case 'note': log(`note: ${e.message}`); break
      case 'failed': log(`failed: ${e.message}`); break
    }
  }
  events.addEventListener('end', msg => {
    events.close()
    $('cancel').hidden = true
    const end = JSON.parse(msg.data)
    localStorage.removeItem(keyName(end.id))
    ended(end)
    onEnd(end)
  })
  events.onerror = () => { if (events.readyState === EventSource.CLOSED) log('lost the connection to this peer') }
  const cancel = async () => {
    $('cancel').disabled = true
    const key = localStorage.getItem(keyName(job.id))
    const response = await fetch(`/api/jobs/${job.id}/cancel`, { method: 'POST', headers: key !== null ? { 'x-cancel-key': key } : {} })
    if (!response.ok) {
      log(`cannot cancel: ${await errorOf(response)}`)
      $('cancel').disabled = false
    }
  }
  $('cancel').onclick = () => { void cancel() }
  return { close: () => { events.close() } }
}
