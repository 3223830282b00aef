import { timingSafeEqual } from 'node:crypto'
import type { MiddlewareHandler } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import { refuse } from './refuse.ts'

/** Per port: cookies ignore ports, and peers on one host have tokens of their own. */
const cookieFor = (port: number): string => `tileswarm_token_${port}`

const hostOf = (origin: string): string | undefined => { try { return new URL(origin).host } catch { return undefined } }

function sameSecret (given: string | undefined, token: string): boolean {
  if (given === undefined || token === '') return false
  const a = Buffer.from(given)
  const b = Buffer.from(token)
  return a.length === b.length && timingSafeEqual(a, b)
}

/**
 * Who may ask at all. A name that resolves to loopback is not enough (DNS
 * rebinding): on loopback, the Host must be ours. And same-origin only: a
 * page elsewhere cannot make the browser submit here.
 */
export function sameSite (options: { host: string, port: () => number, tokenRequired: boolean }): MiddlewareHandler {
  return async (c, next) => {
    const host = c.req.header('host') ?? ''
    const ours = `${options.host}:${options.port()}`
    // Loopback by any loopback name, on any port (an SSH tunnel's or a forward's too): never by another name.
    if (!options.tokenRequired && !/^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/.test(host) && host !== ours) {
      return refuse(c, 421, 'MisdirectedRequest', `this server answers to loopback names only (${ours})`)
    }
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      const site = c.req.header('sec-fetch-site')
      const origin = c.req.header('origin')
      if ((site !== undefined && site !== 'same-origin' && site !== 'none') || (origin !== undefined && hostOf(origin) !== host)) {
        return refuse(c, 403, 'CrossOrigin', 'requests from other sites are refused')
      }
    }
    await next()
  }
}

/** The token, once, in the address the peer printed; then a cookie the page's requests carry (or a bearer header). */
export function tokenGate (options: { token: string | undefined, port: () => number }): MiddlewareHandler {
  const { token } = options
  return async (c, next) => {
    if (token === undefined) return await next()
    const given = c.req.query('token')
    if (given !== undefined && c.req.method === 'GET' && sameSecret(given, token)) {
      setCookie(c, cookieFor(options.port()), token, { httpOnly: true, sameSite: 'Strict', path: '/' })
      return c.redirect(c.req.path, 303)
    }
    const bearer = c.req.header('authorization')?.replace(/^Bearer\s+/i, '')
    if (sameSecret(getCookie(c, cookieFor(options.port())), token) || sameSecret(bearer, token)) return await next()
    return refuse(c, 401, 'Unauthorized', 'this peer\'s web server needs its token: open the address the peer printed (…/?token=…), or send Authorization: Bearer <token>')
  }
}
