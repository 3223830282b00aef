import { bytes, el, errorOf } from './common.js'
import { sortFiles } from './files.js'
import { keepCancelKey, watch } from './watch.js'

const $ = id => document.getElementById(id)
let registry
let chosen = []
/** The job being watched: one at a time. */
let watching
/** A job of this page's is starting or running: Process waits. */
let busy = false

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

/** What the peer would refuse is refused here, before the upload: one line a file. */
async function choose (files) {
  const { taken, refused } = await sortFiles([...files])
  chosen = taken
  const total = chosen.reduce((n, f) => n + f.size, 0)
  $('chosen').textContent = chosen.length === 0 ? 'No image chosen.' : `${chosen.length === 1 ? chosen[0].name : `${chosen.length} images`} (${bytes(total)})${total > registry.maxUploadBytes ? ` — over this peer's upload limit of ${bytes(registry.maxUploadBytes)}` : ''}`
  $('refused').replaceChildren(...refused.map(line => el('div', {}, `refused: ${line}`)))
  ready()
}

/** Process: only with images chosen, under the limit, and no job of this page's starting or running. */
function ready () {
  const total = chosen.reduce((n, f) => n + f.size, 0)
  $('submit').disabled = busy || chosen.length === 0 || total > registry.maxUploadBytes || !registry.canSubmit
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
  busy = true
  ready()
  $('submit').textContent = 'Uploading…'
  try {
    const response = await fetch('/api/jobs', { method: 'POST', body: form })
    if (!response.ok) throw new Error(await errorOf(response))
    const job = await response.json()
    keepCancelKey(job)
    follow(job)
  } catch (err) {
    $('submit-error').textContent = err.message
    busy = false
    ready()
  } finally {
    $('submit').textContent = 'Process'
  }
}

/** Watches a job, with its id in the address: a reload, or the address sent elsewhere, shows it again. */
function follow (job) {
  watching?.close()
  history.replaceState(null, '', `#job=${job.id}`)
  busy = job.state === 'running'
  ready()
  watching = watch(job, () => {
    busy = false
    ready()
    void recent()
  })
}

/** The job in the address, if any: its live view comes back. */
async function resume () {
  const id = /^#job=([0-9a-f]+)$/.exec(location.hash)?.[1]
  if (id === undefined) return
  const response = await fetch(`/api/jobs/${id}`)
  if (!response.ok) {
    $('submit-error').textContent = `job ${id}: ${await errorOf(response)}`
    history.replaceState(null, '', location.pathname)
    return
  }
  follow(await response.json())
}

/** A job's outcome in a line: a batch's failures counted, not hidden under "done". */
function stateText (j) {
  if (j.state === 'failed') return `failed: ${j.error.message}`
  const failed = (j.files ?? []).filter(f => f.state === 'failed').length
  return failed > 0 && j.state === 'done' ? `done, ${failed} of ${j.files.length} failed` : j.state
}

async function recent () {
  const response = await fetch('/api/jobs')
  if (!response.ok) return
  const jobs = await response.json()
  $('jobs').replaceChildren(...jobs.map(j => el('tr', {},
    el('td', {}, j.title),
    el('td', {}, j.ops),
    el('td', {}, el('a', { href: `#job=${j.id}` }, stateText(j))),
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
  drop.addEventListener('drop', e => { e.preventDefault(); drop.classList.remove('over'); void choose(e.dataTransfer.files) })
  $('files').addEventListener('change', () => { void choose($('files').files) })
  window.addEventListener('hashchange', () => { void resume() })
  $('submit').addEventListener('click', () => { void submit() })
  await resume()
  await recent()
}

void start()
