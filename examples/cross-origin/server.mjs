#!/usr/bin/env node
// The tutorials' two-server setup: this tiny static server serves the
// client page on one port, the hub runs on another, so the page's
// EventSource is cross-origin and needs the hub's CORS support.
//
//   tidings serve --demo --cors-origin http://127.0.0.1:8000
//   node examples/cross-origin/server.mjs [PORT]      default 8000 (0: any free port)
//   open http://127.0.0.1:8000/?hub=http://127.0.0.1:8080
import http from 'node:http';
import { readFileSync } from 'node:fs';

const port = Number(process.argv[2] ?? process.env.PORT ?? 8000);
const page = readFileSync(new URL('./index.html', import.meta.url));

const server = http.createServer((req, res) => {
  const path = new URL(req.url, 'http://localhost').pathname;
  if (req.method === 'GET' && (path === '/' || path === '/index.html')) {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-cache' });
    res.end(page);
  } else {
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
  }
});
server.listen(port, '127.0.0.1', () => {
  const { port: actual } = server.address();
  console.log(`cross-origin page on http://127.0.0.1:${actual}/?hub=http://127.0.0.1:8080`);
});
