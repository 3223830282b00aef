import test from 'ava'
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { unzipSync } from 'fflate'
import { isBatchInput, openSink, planBatch } from '../../src/client/batch-plan.ts'

async function tree (): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'tileswarm-plan-'))
  await mkdir(join(root, 'in', 'sub', 'deeper'), { recursive: true })
  for (const f of ['a.jpg', 'b.PNG', 'c.gif', 'notes.txt', '.hidden.jpg', 'sub/d.webp', 'sub/deeper/e.tif']) await writeFile(join(root, 'in', f), f)
  return root
}

test('a folder: its images, by name; subfolders with recursive; the tree mirrored, each format kept (GIF becomes PNG)', async t => {
  const root = await tree()
  const flat = await planBatch([join(root, 'in')], join(root, 'out'), { recursive: false })
  t.deepEqual(flat.items.map(i => [i.output, i.format]), [['a.jpg', 'jpeg'], ['b.PNG', 'png'], ['c.png', 'png']])
  t.deepEqual(flat.leftOut.map(f => f.slice(root.length)), ['/in/.hidden.jpg', '/in/notes.txt'], 'not images, or hidden: left out, and named')
  t.deepEqual(flat.folders.map(f => f.slice(root.length)), ['/in/sub'], 'a subfolder without -r: named too')
  t.deepEqual(flat.target, { kind: 'dir', path: join(root, 'out') })
  const deep = await planBatch([join(root, 'in')], join(root, 'out.zip'), { recursive: true })
  t.deepEqual(deep.items.map(i => i.output), ['a.jpg', 'b.PNG', 'c.png', 'sub/d.webp', 'sub/deeper/e.tif'])
  t.is(deep.target.kind, 'zip')
})

test('--format sets every output\'s format and extension; several -i and a glob mix', async t => {
  const root = await tree()
  const plan = await planBatch([join(root, 'in', 'a.jpg'), join(root, 'in', 'sub', '*.webp')], join(root, 'out'), { recursive: false, format: 'webp' })
  t.deepEqual(plan.items.map(i => [i.input.slice(root.length), i.output, i.format]), [['/in/a.jpg', 'a.webp', 'webp'], ['/in/sub/d.webp', 'd.webp', 'webp']])
  const deepGlob = await planBatch([join(root, 'in', '**', '*.tif')], join(root, 'out'), { recursive: false })
  t.deepEqual(deepGlob.items.map(i => i.output), ['sub/deeper/e.tif'])
})

test('what is refused before anything runs: two inputs onto one output, no images, a missing input', async t => {
  const root = await tree()
  await writeFile(join(root, 'in', 'a.png'), 'x')
  await t.throwsAsync(planBatch([join(root, 'in')], join(root, 'out'), { recursive: false, format: 'png' }), { message: /a\.jpg and .*a\.png would both be written to a\.png \(--format gives them one extension\)/ })
  await t.throwsAsync(planBatch([join(root, 'in', '*.bmp')], join(root, 'out'), { recursive: false }), { message: /no file matches/ })
  await mkdir(join(root, 'empty'))
  await t.throwsAsync(planBatch([join(root, 'empty')], join(root, 'out'), { recursive: false }), { message: /no images in/ })
  await t.throwsAsync(planBatch([join(root, 'nope')], join(root, 'out'), { recursive: false }), { message: /cannot read .*nope: no such file or folder/ })
  // The same file twice (a file and its folder) is one image.
  const twice = await planBatch([join(root, 'in', 'c.gif'), join(root, 'in')], join(root, 'out'), { recursive: false })
  t.is(twice.items.filter(i => i.input.endsWith('c.gif')).length, 1)
})

test('what makes a batch: several inputs, a folder, a glob; one file is not one', async t => {
  const root = await tree()
  t.false(await isBatchInput([join(root, 'in', 'a.jpg')]))
  t.true(await isBatchInput([join(root, 'in')]))
  t.true(await isBatchInput([join(root, 'in', '*.jpg')]))
  t.true(await isBatchInput([join(root, 'in', 'a.jpg'), join(root, 'in', 'c.gif')]))
})

test('a zip holds every output written, under its name; unfinished, it is not left behind', async t => {
  const root = await tree()
  const path = join(root, 'out.zip')
  const sink = await openSink({ kind: 'zip', path })
  await sink.write('a.jpg', Buffer.from('first'))
  await sink.write('sub/b.png', Buffer.from('second'))
  await sink.close()
  const files = unzipSync(await readFile(path))
  t.deepEqual(Object.keys(files).sort(), ['a.jpg', 'sub/b.png'])
  t.is(Buffer.from(files['sub/b.png']!).toString(), 'second')
  const other = await openSink({ kind: 'zip', path: join(root, 'cut.zip') })
  await other.write('a.jpg', Buffer.from('x'))
  await other.discard()
  await t.throwsAsync(readFile(join(root, 'cut.zip')))
})

test('a batch never writes over its inputs, nor into the folder it reads with -r; a folder that cannot be made says so (under /proc too)', async t => {
  const root = await tree()
  await t.throwsAsync(planBatch([join(root, 'in')], join(root, 'in'), { recursive: false }), { message: /the output folder .*in is the input folder .*in: the next run would take its outputs in as inputs/ })
  await t.throwsAsync(planBatch([join(root, 'in', 'a.jpg'), join(root, 'in', 'c.gif')], join(root, 'in'), { recursive: false }), { message: /a\.jpg would be overwritten by its own output; give -o another folder/ })
  await t.throwsAsync(planBatch([join(root, 'in')], join(root, 'in', 'out'), { recursive: true }), { message: /the output folder .*in\/out is inside the input folder .*in/ })
  // Without -r the folder's subfolders are not read: an output folder there is fine.
  t.is((await planBatch([join(root, 'in')], join(root, 'in', 'out'), { recursive: false })).items.length, 3)
  await t.throwsAsync(openSink({ kind: 'dir', path: '/proc/tileswarm-nope/deeper' }), { message: /cannot create the folder \/proc\/tileswarm-nope: no folder can be made in \/proc/ })
  await writeFile(join(root, 'a-file'), 'x')
  await t.throwsAsync(openSink({ kind: 'dir', path: join(root, 'a-file') }), { message: /it is a file/ })
  const made = await openSink({ kind: 'dir', path: join(root, 'new', 'deeper') })
  await made.write('x/y.jpg', Buffer.from('z'))
  t.is((await readFile(join(root, 'new', 'deeper', 'x', 'y.jpg'))).toString(), 'z')
})
