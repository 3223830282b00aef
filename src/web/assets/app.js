import { bytes, colourOf, el, errorOf, seconds, shortId } from './common.js'

const $ = id => document.getElementById(id)
let registry
let chosen = []
/** The job being watched: one at a time. */
let watching

/** One parameter's input, from the registry's description of it: its range, its default. */
function paramInput (p) {
  const title = p.description
  if (p.kind === 'number') {
    const input = el('input', { type: p.auto ? 'text' : 'number', name: p.name, value: String(p.default), title })
    if (!p.auto) {
      input.min = String(p.min)
      input.max = String(p.max)
      input.step = p.integer ? (p.odd ? '2' : '1') : 'any'
    }
    return input
  }
  if (p.kind === 'choice') {
    const select = el('select', { name: p.name, title })
    for (const c of p.choices) select.append(el('option', { value: c }, c))
    select.value = p.default
    return select
  }
  if (p.kind === 'colour') return el('input', { type: 'color', name: p.name, value: p.default, title })
  return el('input', { type: 'text', name: p.name, value: p.default.join(' '), title: `${title} (numbers, row by row)` })
}

function addStep (name) {
  const step = el('div', { class: 'step' })
  const select = el('select', { name: 'op', 'aria-label': 'operation' })
  const families = {}
  for (const op of registry.operations) (families[op.family] ??= []).push(op)
  for (const [family, ops] of Object.entries(families)) {
    const group = el('optgroup', { label: family })
    for (const op of ops) group.append(el('option', { value: op.name }, op.name))
    select.append(group)
  }
  const params = el('span')
  const summary = el('div', { class: 'summary' })
  const remove = el('button', { type: 'button', class: 'plain', title: 'remove this step' }, '×')
  const fill = () => {
    const op = registry.operations.find(o => o.name === select.value)
    params.replaceChildren(...op.params.map(p => el('label', {}, `${p.name} `, paramInput(p))))
    summary.textContent = op.summary
  }
  select.addEventListener('change', fill)
  remove.addEventListener('click', () => { step.remove() })
  select.value = name
  fill()
  step.append(select, params, remove, summary)
  $('steps').append(step)
}

/** The pipeline as --ops takes it: "blur:sigma=2,sobel". */
function pipeline () {
  return [...$('steps').querySelectorAll('.step')].map(step => {
    const op = step.querySelector('select[name=op]').value
    const op0 = registry.operations.find(o => o.name === op)
    const parts = [op]
    for (const p of op0.params) {
      const input = step.querySelector(`[name="${p.name}"]`)
      let value = input.value.trim()
      if (p.kind === 'kernel') value = `[${value.split(/[\s,]+/).filter(Boolean).join(',')}]`
      if (value !== '' && value !== String(p.default)) parts.push(`${p.name}=${value}`)
    }
    return parts.join(':')
  }).join(',')
}

function choose (files) {
  chosen = [...files]
  const total = chosen.reduce((n, f) => n + f.size, 0)
  $('chosen').textContent = chosen.length === 0 ? 'No image chosen.' : `${chosen.length === 1 ? chosen[0].name : `${chosen.length} images`} (${bytes(total)})${total > registry.maxUploadBytes ? ` — over this peer's upload limit of ${bytes(registry.maxUploadBytes)}` : ''}`
  $('submit').disabled = chosen.length === 0 || total > registry.maxUploadBytes || !registry.canSubmit
}

async function submit () {
  $('submit-error').textContent = ''
  const form = new FormData()
  form.append('ops', pipeline())
  if ($('format').value !== '') form.append('format', $('format').value)
  form.append('quality', $('quality').value)
  if (!$('keep-metadata').checked) form.append('strip', 'true')
  if ($('verify').value !== '') form.append('verify', $('verify').value)
  if ($('priority').value !== '') form.append('priority', $('priority').value)
  for (const f of chosen) form.append('file', f, f.name)
  $('submit').disabled = true
  try {
    const response = await fetch('/api/jobs', { method: 'POST', body: form })
    if (!response.ok) throw new Error(await errorOf(response))
    watch(await response.json())
  } catch (err) {
    $('submit-error').textContent = err.message
  } finally {
    $('submit').disabled = chosen.length === 0 || !registry.canSubmit
  }
}

/** The live view of one job: status line, tile (or image) map coloured by peer, preview and download at the end. */
function watch (job) {
  watching?.close()
  $('job').hidden = false
  $('job-title').textContent = `${job.title}: ${job.ops}`
  $('status').textContent = 'uploaded; waiting for the swarm…'
  $('map').replaceChildren()
  $('legend').replaceChildren()
  $('preview').replaceChildren()
  $('log').textContent = ''
  $('download-row').hidden = true
  const byPeer = new Map()
  let cells = []
  let perPhase = 1
  let started
  let filled = 0
  const log = line => { $('log').textContent += `${line}\n` }
  const grid = (count, cols) => {
    $('map').style.gridTemplateColumns = `repeat(${cols}, minmax(4px, 1fr))`
    $('map').style.maxWidth = `${Math.min(100, cols * 3)}%`
    cells = Array.from({ length: count }, () => el('div'))
    $('map').replaceChildren(...cells)
  }
  const paint = (index, peer) => {
    const cell = cells[index]
    if (cell === undefined) return
    cell.style.background = colourOf(peer)
    cell.title = `done by ${shortId(peer)}`
    byPeer.set(peer, (byPeer.get(peer) ?? 0) + 1)
  }
  const legend = () => {
    $('legend').replaceChildren(...[...byPeer].map(([p, n]) => el('span', {}, el('i', { style: { background: colourOf(p) } }), `${shortId(p)}: ${n}`)))
  }
  const rate = (done, total, unit) => {
    started ??= performance.now()
    const s = (performance.now() - started) / 1000
    const perS = s > 0.5 ? done / s : NaN
    const eta = perS > 0 ? (total - done) / perS : NaN
    $('status').textContent = `${done}/${total} ${unit} (${total > 0 ? Math.floor(100 * done / total) : 0}%) · ${Number.isFinite(perS) ? perS.toFixed(1) : '--'} ${unit}/s · ETA ${seconds(eta)}`
  }
  // On a dropped connection the browser reconnects saying the last event it had (Last-Event-ID): the rest follow, none twice.
  const events = new EventSource(`/api/jobs/${job.id}/events`)
  watching = events
  events.onmessage = msg => {
    const e = JSON.parse(msg.data)
    switch (e.event) {
      case 'accepted':
        perPhase = e.tiles
        grid(e.tiles, Math.ceil(e.width / e.tileSize))
        log(`accepted as job ${e.jobId} (the dashboard's and the peers' logs' name for it): ${e.width}x${e.height}, ${e.tiles} tiles of ${e.tileSize} px${e.phases > 1 ? ` in ${e.phases} phases` : ''}`)
        for (const n of e.notes) log(`note: ${n}`)
        break
      case 'progress':
        for (const [peer, tiles] of Object.entries(e.placed ?? {})) for (const t of tiles) paint(t % perPhase, peer)
        legend()
        rate(e.done, e.total, 'tiles')
        if (e.verify !== undefined) $('status').textContent += ` · ${e.verify.checked} checked${e.verify.disagreements > 0 ? `, ${e.verify.disagreements} disagreed` : ''}`
        break
      case 'done':
        if (e.verify !== undefined) log(`checks: ${e.verify.checked} tiles confirmed by a second peer (${e.verify.extra} extra computations)${e.verify.disagreements > 0 ? `, ${e.verify.disagreements} disagreements settled by a third` : ''}${Object.keys(e.verify.excluded).length > 0 ? `; excluded ${Object.keys(e.verify.excluded).map(shortId).join(', ')}` : ''}`)
        break
      case 'excluded': log(`excluded peer ${shortId(e.peer)}: ${e.wrong > 0 ? 'its result lost a vote against other peers\'' : 'caught giving wrong results in an earlier job'}; what it delivered is computed again`); break
      case 'batch':
        grid(e.images, Math.ceil(Math.sqrt(e.images * 2)))
        log(`batch of ${e.images} images`)
        break
      case 'started': log(`coordinated as batch ${e.jobId}`); break
      case 'image':
        paint(filled++, e.by)
        legend()
        break
      case 'image-failed':
        cells[filled++]?.classList.add('failed')
        log(`failed: ${e.input.split('/').pop()}: ${e.message}`)
        break
      case 'batch-progress':
        rate(e.done + e.failed, e.total, 'images')
        break
      case 'encoding': $('status').textContent = 'every tile is in; the coordinator encodes the result…'; break
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
    const end = JSON.parse(msg.data)
    if (end.state === 'done') {
      $('status').textContent = `done in ${seconds((end.endedAt - end.createdAt) / 1000)}: ${end.result.filename} (${bytes(end.result.bytes)})`
      if (end.kind === 'image') $('preview').replaceChildren(el('img', { src: `/api/jobs/${end.id}/result`, alt: 'result' }))
      $('download').href = `/api/jobs/${end.id}/result?download=1`
      $('download-row').hidden = false
    } else {
      $('status').replaceChildren(el('span', { class: 'error' }, `failed: ${end.error.message}`))
    }
    void recent()
  })
  events.onerror = () => { if (events.readyState === EventSource.CLOSED) log('lost the connection to this peer') }
}

async function recent () {
  const response = await fetch('/api/jobs')
  if (!response.ok) return
  const jobs = await response.json()
  $('jobs').replaceChildren(...jobs.map(j => el('tr', {},
    el('td', {}, j.title),
    el('td', {}, j.ops),
    el('td', {}, j.state === 'failed' ? `failed: ${j.error.message}` : j.state),
    el('td', {}, j.result !== undefined ? el('a', { href: `/api/jobs/${j.id}/result?download=1` }, j.result.filename) : ''))))
}

async function start () {
  const response = await fetch('/api/ops')
  if (!response.ok) {
    $('submit-error').textContent = await errorOf(response)
    return
  }
  registry = await response.json()
  for (const f of registry.formats) $('format').append(el('option', { value: f }, f))
  $('quality').value = String(registry.quality)
  if (!registry.canSubmit) $('submit-error').textContent = 'this peer takes jobs only from its --allow-submit peers: its operator lets this page submit by giving --http-token'
  addStep('blur')
  $('add-step').addEventListener('click', () => { addStep('greyscale') })
  const drop = $('drop')
  drop.addEventListener('click', () => { $('files').click() })
  drop.addEventListener('keydown', e => { if (e.key === 'Enter' || e.key === ' ') $('files').click() })
  drop.addEventListener('dragover', e => { e.preventDefault(); drop.classList.add('over') })
  drop.addEventListener('dragleave', () => { drop.classList.remove('over') })
  drop.addEventListener('drop', e => { e.preventDefault(); drop.classList.remove('over'); choose(e.dataTransfer.files) })
  $('files').addEventListener('change', () => { choose($('files').files) })
  $('submit').addEventListener('click', () => { void submit() })
  await recent()
}

void start()
