#!/usr/bin/env node
// The one binary: `secondsite <role|noun> <verb> ...`. Runs the TypeScript sources through tsx.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
