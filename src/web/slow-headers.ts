import type { Server, ServerOptions } from 'node:http'
import type { Socket } from 'node:net'

/**
 * Node's own clocks on a connection: its headers within `headerTimeoutMs`
 * (an idle or trickling connection is answered 408 and closed), and a whole
 * request within `requestTimeoutMs`, a backstop behind the upload's pace.
 * Node looks at its connections every `connectionsCheckingInterval`.
 */
export function timeoutOptions (options: { headerTimeoutMs: number, requestTimeoutMs: number }): ServerOptions {
  return {
    headersTimeout: options.headerTimeoutMs,
    requestTimeout: options.headerTimeoutMs + options.requestTimeoutMs,
    connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(options.headerTimeoutMs / 4))),
  }
}

/** Node's answers to a broken or late request, with the rule said for a late one (Node's own says nothing). */
export function answerClientErrors (server: Server, options: { headerTimeoutMs: number, requestTimeoutMs: number }): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket & { _httpMessage?: { headersSent?: boolean } }) => {
    if (socket.writable && socket._httpMessage?.headersSent !== true) {
      socket.end(err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? response(408, 'Request Timeout', { error: 'RequestTimeout', message: `the request's headers took over ${options.headerTimeoutMs / 1000} s (--web-header-timeout), or the whole request over ${(options.headerTimeoutMs + options.requestTimeoutMs) / 1000} s (--upload-timeout)` })
        : err.code === 'HPE_HEADER_OVERFLOW' ? response(431, 'Request Header Fields Too Large') : response(400, 'Bad Request'))
    }
    socket.destroySoon()
    // A client that does not read its answer is cut off all the same.
    setTimeout(() => { socket.destroy() }, 1000).unref()
  })
}

function response (status: number, reason: string, body?: Record<string, string>): string {
  const json = body === undefined ? '' : JSON.stringify(body)
  return `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\n${json === '' ? '' : `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\n`}\r\n${json}`
}
