/** This build's version: `--version`, the status view and the metrics say it. */
export const VERSION = '0.1.0'
