// Builds the dashboard into dist/: index.html, app.js and app.css, nothing else,
// so the binary can embed exactly these three files.
import { build } from 'esbuild';
import { copyFile, mkdir, readdir, rm } from 'node:fs/promises';

const out = new URL('./dist/', import.meta.url);
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: { app: 'src/main.js' },
  bundle: true,
  minify: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2020'],
  legalComments: 'eof',
  outdir: 'dist',
  logLevel: 'warning',
});
await build({
  entryPoints: { app: 'src/app.css' },
  bundle: true,
  minify: true,
  outdir: 'dist',
  logLevel: 'warning',
});
await copyFile(new URL('./src/index.html', import.meta.url), new URL('index.html', out));
const files = (await readdir(out)).sort().join(' ');
if (files !== 'app.css app.js index.html') throw new Error(`unexpected files in dist/: ${files}`);
