import { basename } from 'node:path'
import { WEB_MAX_NAME_CHARS } from '../common/defaults.ts'
import type { BatchEvent } from '../client/batch-events.ts'
import type { OutputFormat } from '../imaging/index.ts'

/** The names a page job's files are written and shown with: safe, unique, with the extension that says what they are. */

/** The extension each container is written with. */
export const EXTENSION: Record<string, string> = { jpeg: '.jpg', png: '.png', webp: '.webp', tiff: '.tif', heif: '.heif', gif: '.gif' }
/** Extensions that name each container: a file's own is kept when it is one of its container's. */
const EXTENSIONS: Record<string, string[]> = { jpeg: ['.jpg', '.jpeg', '.jpe'], png: ['.png'], webp: ['.webp'], tiff: ['.tif', '.tiff'], heif: ['.heif', '.heic', '.avif'], gif: ['.gif'] }

/** The extension an upload is written with: its own if it names what the file is, else the container's. */
export function extensionFor (name: string, container: string): string {
  const own = /\.[A-Za-z0-9]+$/.exec(name)?.[0].toLowerCase()
  return own !== undefined && (EXTENSIONS[container] ?? []).includes(own) ? own : EXTENSION[container] ?? '.png'
}

export const CONTENT_TYPE: Record<OutputFormat, string> = { jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp', tiff: 'image/tiff', avif: 'image/avif' }

/** A name as the user gave it, made safe to show and to write in a folder of ours: no path, no hidden file, no odd characters. */
export function safeStem (name: string): string {
  const base = name.split(/[/\\]/).pop() ?? ''
  const stem = base.replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9._ -]+/g, '_').replace(/^[.\s]+/, '').slice(0, WEB_MAX_NAME_CHARS).trim()
  return stem === '' ? 'image' : stem
}

/** Each upload's file name in a batch's folder, in order: unique by name alone (outputs are named by it, whatever their format), so cat.jpg and cat.jpeg become cat and cat-2. */
export function uploadNames (files: Array<{ name: string }>, containers: string[]): string[] {
  const names: string[] = []
  const taken = new Set<string>()
  const again = new Map<string, number>()
  for (const [i, f] of files.entries()) {
    const stem = safeStem(f.name)
    let unique = stem
    // Counted per name, so a thousand alike cost a thousand steps, not a million.
    while (taken.has(unique.toLowerCase())) {
      const n = (again.get(stem.toLowerCase()) ?? 1) + 1
      again.set(stem.toLowerCase(), n)
      unique = `${stem}-${n}`
    }
    taken.add(unique.toLowerCase())
    names.push(`${unique}${extensionFor(f.name, containers[i]!)}`)
  }
  return names
}

/** A path as the page hears of it: the image's name, not where this peer keeps it (nor its place in a .zip). */
export const nameOnly = (path: string): string => basename(path.replace(/^.*\.zip:/, ''))

/** A batch's event with every path in it as a name only. */
export function shownByName (e: BatchEvent): BatchEvent {
  const out: Record<string, unknown> = { ...e }
  if ('input' in e) out.input = nameOnly(e.input)
  if ('output' in e) out.output = nameOnly(e.output)
  if (e.event === 'batch-done') out.failures = e.failures.map(f => ({ ...f, input: nameOnly(f.input) }))
  if (e.event === 'batch') out.leftOut = e.leftOut.map(nameOnly)
  return out as BatchEvent
}

/** The operations' names in a download's name: "blur:sigma=2,sobel" is blur-sobel (four at most). */
export function opsWords (ops: string): string {
  const names = ops.split(',').map(s => s.split(':')[0]!.trim().replace(/[^A-Za-z0-9-]+/g, '')).filter(Boolean)
  const words = names.slice(0, 4).join('-') + (names.length > 4 ? `-and-${names.length - 4}-more` : '')
  return words === '' ? 'processed' : words
}

/** A download that says what it is: photo-blur-sobel.png; a batch's tileswarm-blur-12-images.zip. */
export function downloadName (ops: string, what: { stem: string, extension: string } | { images: number }): string {
  return 'images' in what ? `tileswarm-${opsWords(ops)}-${what.images}-images.zip` : `${what.stem}-${opsWords(ops)}${what.extension}`
}
