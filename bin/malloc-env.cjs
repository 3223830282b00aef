// glibc malloc settings the launcher gives the peer when the user has set none (docs/operating.md, Memory).
'use strict'

var DEFAULTS = {}

/** `env` with the defaults added where unset: a user's own setting wins. */
function withMallocDefaults (env) {
  var out = Object.assign({}, env)
  Object.keys(DEFAULTS).forEach(function (k) { if (out[k] === undefined) out[k] = DEFAULTS[k] })
  return out
}

module.exports = { MALLOC_DEFAULTS: DEFAULTS, withMallocDefaults: withMallocDefaults }
