import test from 'ava'
import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cycles, importsOf, longFunctions, sourceFiles } from './rooms.ts'

/** The rooms stay small enough to hold in one's head, and import one way (issue 27's targets). */
const root = join(dirname(fileURLToPath(import.meta.url)), '../..')
const MAX_FILE_LINES = 400
const MAX_FUNCTION_LINES = 80
const MAX_PEER_LINES = 200
const MAX_README_LINES = 300

const lines = (file: string): number => readFileSync(join(root, file), 'utf8').split('\n').length - 1
const files = sourceFiles(root)

test('no source file is over 400 lines', t => {
  t.deepEqual(files.filter(f => lines(f) > MAX_FILE_LINES).map(f => `${f}: ${lines(f)} lines`), [])
})

test('no function in src is over 80 lines', t => {
  const long = files.flatMap(f => longFunctions(root, f, MAX_FUNCTION_LINES))
  t.deepEqual(long.map(l => `${l.file}:${l.line} ${l.name}: ${l.lines} lines`), [])
})

test('the peer only wires its services', t => {
  t.true(lines('src/swarm/peer.ts') <= MAX_PEER_LINES, `src/swarm/peer.ts has ${lines('src/swarm/peer.ts')} lines`)
})

test('no import cycle between files of src', t => {
  const graph = new Map(files.map(f => [f, importsOf(root, f)]))
  t.deepEqual(cycles(graph).map(c => c.join(' <-> ')), [])
})

test('src folders import one way', t => {
  // A folder is src's child (src/imaging/operations is part of imaging); the root's entries import, nobody imports them.
  const folder = (file: string): string => file.split('/').slice(0, 2).join('/').replace(/\.ts$/, '')
  const graph = new Map<string, string[]>()
  for (const f of files) {
    const from = folder(f)
    const to = graph.get(from) ?? []
    for (const i of importsOf(root, f)) if (i.startsWith('src/') && folder(i) !== from && !to.includes(folder(i))) to.push(folder(i))
    graph.set(from, to)
  }
  t.deepEqual(cycles(graph).map(c => c.join(' <-> ')), [])
})

test('the README is short and the docs hold the rest', t => {
  t.true(lines('README.md') <= MAX_README_LINES, `README.md has ${lines('README.md')} lines`)
  t.true(readdirSync(join(root, 'docs')).filter(f => f.endsWith('.md')).length >= 3)
})

test('the checks themselves find what they look for', t => {
  // A cycle of two and a long arrow are found: the tests above cannot pass by finding nothing.
  t.deepEqual(cycles(new Map([['a', ['b']], ['b', ['a']], ['c', ['a']]])), [['a', 'b']])
  t.deepEqual(cycles(new Map([['a', ['b']], ['b', []]])), [])
  t.true(longFunctions(root, 'test/code/rooms.ts', 20).some(l => l.name === 'cycles'))
  t.true(importsOf(root, 'test/code/rooms.test.ts').includes('test/code/rooms.ts'))
})
