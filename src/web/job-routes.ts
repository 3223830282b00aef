import { createReadStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import type { Context, Hono, MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { streamSSE } from 'hono/streaming'
import { CancelRefusedError, UnknownJobError } from '../common/errors.ts'
import { WEB_MAX_FILES, WEB_MULTIPART_SLACK_BYTES } from '../common/defaults.ts'
import type { OutputFormat } from '../imaging/index.ts'
import { OUTPUT_FORMATS, type Priority } from '../protocol/constants.ts'
import { checkPriority } from '../client/options.ts'
import { parseVerifyLevel, type VerifyLevel } from '../protocol/verify-level.ts'
import { describeJob, type Sequenced, type Upload, type WebJob, type WebJobs } from './jobs.ts'
import { refuse } from './refuse.ts'
import { clientAddress } from './upload-gate.ts'

/** The page's jobs: submitted by upload, listed, watched as they go (server-sent events), their results fetched. */
export function jobRoutes (app: Hono, options: { jobs: WebJobs, canSubmit: boolean, maxUploadBytes: number, uploadGate: MiddlewareHandler, operator: boolean }): void {
  const { jobs } = options
  const tooLarge = (c: Context): Response => refuse(c, 413, 'LimitExceededError', `the upload is over this peer's limit of ${options.maxUploadBytes} bytes (--max-upload-bytes)`)
  app.get('/api/jobs', c => c.json(jobs.list().map(describeJob)))
  app.post('/api/jobs', async (c, next) => {
    if (!options.canSubmit) return refuse(c, 403, 'SubmitRefusedError', 'this peer takes jobs only from the peers in --allow-submit; its operator lets the web page submit by giving --http-token')
    // Refused before the body is read: a full peer says so at once; a slow upload loses its place (upload-gate.ts).
    return await options.uploadGate(c, next)
  }, bodyLimit({ maxSize: options.maxUploadBytes + WEB_MULTIPART_SLACK_BYTES, onError: tooLarge }), async c => await upload(c, jobs, options.maxUploadBytes, tooLarge))
  app.get('/api/jobs/:id', c => {
    const job = jobs.get(c.req.param('id'))
    return job === undefined ? refuse(c, 404, 'NotFound', 'no such job (a job is kept for an hour after it ends)') : c.json(describeJob(job))
  })
  app.get('/api/jobs/:id/result', c => {
    const job = jobs.get(c.req.param('id'))
    if (job === undefined) return refuse(c, 404, 'NotFound', 'no such job (a job is kept for an hour after it ends)')
    const result = job.state === 'done' ? job.result : undefined
    if (result === undefined) return refuse(c, 404, 'NotFound', job.state === 'running' ? 'the job is still running' : `the job failed: ${job.error?.message ?? 'no result'}`)
    const disposition = c.req.query('download') !== undefined ? `attachment; filename="${result.filename}"` : 'inline'
    const file = Readable.toWeb(createReadStream(result.path)) as ReadableStream<Uint8Array>
    return c.body(file, 200, { 'content-type': result.type, 'content-length': String(result.bytes), 'content-disposition': disposition })
  })
  app.post('/api/jobs/:id/cancel', c => {
    // The browser that submitted it shows the key it was given; behind a token, whoever is in is the operator.
    try {
      return c.json(describeJob(jobs.cancel(c.req.param('id'), { key: c.req.header('x-cancel-key'), operator: options.operator })))
    } catch (err) {
      if (err instanceof UnknownJobError) return refuse(c, 404, err.name, err.message)
      if (err instanceof CancelRefusedError) return refuse(c, 403, err.name, err.message)
      throw err
    }
  })
  app.get('/api/jobs/:id/thumb/:which', async c => {
    const job = jobs.get(c.req.param('id'))
    const which = c.req.param('which')
    if (job === undefined || job.dir === undefined) return refuse(c, 404, 'NotFound', 'no such job (a job is kept for an hour after it ends)')
    const made = which === 'input' || /^(in|out)-\d{1,5}$/.test(which)
      ? await jobs.thumbs.asked(join(job.dir, which === 'input' ? 'input.webp' : join('thumbs', `${which}.webp`)))
      : which === 'result' && job.result !== undefined && job.result.type !== 'application/zip' ? await jobs.thumbs.of(job.result.path, join(job.dir, 'result.webp')).catch(() => undefined) : undefined
    if (made === undefined) return refuse(c, 404, 'NotFound', `no ${which} preview for this job`)
    return c.body(new Uint8Array(await readFile(made)), 200, { 'content-type': 'image/webp', 'cache-control': 'private, max-age=3600' })
  })
  app.get('/api/jobs/:id/events', c => {
    const job = jobs.get(c.req.param('id'))
    if (job === undefined) return refuse(c, 404, 'NotFound', 'no such job')
    return events(c, job)
  })
}

/** An upload: the images as "file", and the job's fields, checked before the job starts. */
async function upload (c: Context, jobs: WebJobs, maxUploadBytes: number, tooLarge: (c: Context) => Response): Promise<Response> {
  const form = await c.req.parseBody({ all: true }).catch(() => undefined)
  if (form === undefined) return refuse(c, 400, 'InvalidParameterError', 'expected a form upload (multipart/form-data) with the images as "file"')
  const field = (name: string): string | undefined => typeof form[name] === 'string' ? form[name] : undefined
  const files = ([] as unknown[]).concat(form.file ?? []).filter((f): f is File => f instanceof File)
  if (files.length > WEB_MAX_FILES) return refuse(c, 413, 'LimitExceededError', `${files.length} files in one upload: the page takes ${WEB_MAX_FILES} at most (the CLI takes a folder of any size)`)
  const uploads: Upload[] = await Promise.all(files.map(async f => ({ name: f.name, data: Buffer.from(await f.arrayBuffer()) })))
  const total = uploads.reduce((n, u) => n + u.data.length, 0)
  if (total > maxUploadBytes) return tooLarge(c)
  const format = field('format')
  if (format !== undefined && format !== '' && !(OUTPUT_FORMATS as readonly string[]).includes(format)) return refuse(c, 400, 'InvalidParameterError', `format '${format}' is not one of ${OUTPUT_FORMATS.join(', ')}`)
  const quality = field('quality')
  const verify = field('verify')
  let verifyLevel: VerifyLevel | undefined
  try {
    verifyLevel = verify !== undefined && verify !== '' ? parseVerifyLevel(verify, { param: 'verify' }) : undefined
  } catch (err) {
    return refuse(c, 400, 'InvalidParameterError', (err as Error).message)
  }
  const priority = field('priority')
  let level: Priority | undefined
  try {
    level = priority !== undefined && priority !== '' ? checkPriority(priority, 'priority') : undefined
  } catch (err) {
    return refuse(c, 400, 'InvalidParameterError', (err as Error).message)
  }
  const job = await jobs.start({
    ops: field('ops') ?? '',
    ...(format !== undefined && format !== '' ? { format: format as OutputFormat } : {}),
    ...(quality !== undefined && quality !== '' ? { quality: Number(quality) } : {}),
    ...(verifyLevel !== undefined ? { verify: verifyLevel } : {}),
    ...(level !== undefined ? { priority: level } : {}),
    ...(field('strip') === 'true' ? { strip: true } : {}),
    files: uploads,
    client: clientAddress(c),
  })
  // The key goes to this browser alone, with the job: it may cancel what it started.
  return c.json({ ...describeJob(job), cancelKey: job.cancelKey }, 202)
}

/** Progress: every event so far, then each as it comes, then 'end'. A browser that reconnects says what it last had: it gets the rest, not everything again. */
function events (c: Context, job: WebJob): Response {
  const after = Number(c.req.header('last-event-id') ?? -1)
  return streamSSE(c, async stream => {
    const queue = job.events.filter(e => e.seq > after)
    let wake: (() => void) | undefined
    let gone = false
    stream.onAbort(() => { gone = true; wake?.() })
    const listener = (e: Sequenced): void => { queue.push(e); wake?.() }
    job.listeners.add(listener)
    try {
      for (;;) {
        while (queue.length > 0 && !gone) {
          const { seq, event } = queue.shift()!
          await stream.writeSSE({ id: String(seq), data: JSON.stringify(event) })
        }
        if (gone || job.state !== 'running') break
        await new Promise<void>(resolve => { wake = resolve })
        wake = undefined
      }
      if (!gone) await stream.writeSSE({ event: 'end', data: JSON.stringify(describeJob(job)) })
    } finally {
      job.listeners.delete(listener)
    }
  })
}
