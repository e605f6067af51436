// The JSON-lines protocol between an interop script and tests/interop/node.py:
// one JSON object per line on stdout, one line of input on stdin, configuration from the environment.

import * as readline from 'node:readline'

export function emit(object) {
  process.stdout.write(JSON.stringify(object) + '\n')
}

export function env(name) {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}

export async function readLine() {
  const rl = readline.createInterface({ input: process.stdin, terminal: false })
  try {
    const { value, done } = await rl[Symbol.asyncIterator]().next()
    if (done) throw new Error('stdin closed before the callback URL arrived')
    return value.trim()
  } finally {
    rl.close()
  }
}

// Run a client script's main(): exit 0 when it resolves; on a failure, one {"error": ...} line
// with what oauth4webapi's errors carry (and `extra(err)`'s members), then exit 1.
export function run(main, extra = () => ({})) {
  main().then(
    () => process.exit(0),
    (err) => {
      emit({
        error: {
          name: err?.name,
          message: err?.message,
          code: err?.code,
          error: err?.error,
          error_description: err?.error_description,
          status: err?.status,
          cause: err?.cause instanceof Error ? String(err.cause) : err?.cause,
          ...extra(err),
        },
      })
      process.exit(1)
    },
  )
}
