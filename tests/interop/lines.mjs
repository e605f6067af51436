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
