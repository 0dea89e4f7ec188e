#!/usr/bin/env node
// ONNX Runtime (onnxruntime-node, CPU execution provider, fp32) on the seed ViT exported by
// tools/export_onnx.py: batch-1 latency (median, p99 over --windows single-window runs after 50
// warm-up runs) and batch throughput (runs of --batch windows for at least 2 s and 5 runs), timed
// the way bench/bench_infer.cpp times harvit. Prints one JSON line in bench_infer's shape.
//   node bench/ort/bench_ort.js --model vit.onnx [--threads 2] [--windows 1000] [--batch 256]
// Sessions: graph optimisation "all", intra-op threads = --threads, inter-op threads 1,
// sequential execution. Inputs are 64 random windows made (and wrapped as tensors) before the
// clock starts; each timed call is one `await session.run()` (the binding runs the graph
// synchronously inside one setImmediate turn), output tensors included, as harvit's forward
// writes its logits. Install: (cd bench/ort && npm ci --ignore-scripts).
'use strict';
const path = require('path');

function usage(msg) {
  if (msg) process.stderr.write(`bench_ort: ${msg}\n`);
  process.stderr.write('usage: node bench/ort/bench_ort.js --model FILE.onnx [--threads N] [--windows N] [--batch B]\n');
  process.exit(2);
}

const opt = { model: '', threads: 2, windows: 1000, batch: 256, T: 128, M: 3 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const k = argv[i].replace(/^--/, ''), v = argv[i + 1];
  if (!(k in opt) || v === undefined) usage(`bad argument ${argv[i]}`);
  opt[k] = k === 'model' ? v : Number(v);
  if (k !== 'model' && !(Number.isInteger(opt[k]) && opt[k] > 0)) usage(`--${k} must be a positive integer`);
}
if (!opt.model) usage('--model is required');

let ort;
try {
  ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));
} catch (e) {
  process.stderr.write(`bench_ort: onnxruntime-node missing (cd bench/ort && npm ci --ignore-scripts): ${e.message}\n`);
  process.exit(3);
}

// Standard normal windows (Box-Muller over a small seeded xorshift: reproducible, no dependency).
let seed = 0x9E3779B9 >>> 0;
function uniform() {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return (seed + 0.5) / 4294967296;
}
function normal() {
  return Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

const now = () => Number(process.hrtime.bigint()) / 1e6;  // ms, monotonic

async function main() {
  const W = opt.T * opt.M, pool = Math.max(opt.batch, 64);
  const x = new Float32Array(pool * W);
  for (let i = 0; i < x.length; ++i) x[i] = normal();
  const session = await ort.InferenceSession.create(opt.model, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: opt.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  });
  const input = session.inputNames[0];
  const singles = [];
  for (let i = 0; i < 64; ++i)
    singles.push(new ort.Tensor('float32', x.subarray(i * W, (i + 1) * W), [1, 1, opt.T, opt.M]));
  const batched = new ort.Tensor('float32', x.subarray(0, opt.batch * W), [opt.batch, 1, opt.T, opt.M]);
  const out0 = await session.run({ [input]: singles[0] });
  const logits = out0[session.outputNames[0]];
  if (logits.dims.length !== 2 || logits.dims[0] !== 1 || !Number.isFinite(logits.data[0]))
    throw new Error(`unexpected output ${JSON.stringify(logits.dims)}`);

  for (let i = 0; i < 50; ++i) await session.run({ [input]: singles[i % 64] });
  const ms = [];
  for (let i = 0; i < opt.windows; ++i) {
    const t0 = now();
    await session.run({ [input]: singles[i % 64] });
    ms.push(now() - t0);
  }
  ms.sort((a, b) => a - b);

  await session.run({ [input]: batched });
  let reps = 0, el = 0;
  const t0 = now();
  while (reps < 5 || el < 2000) {
    await session.run({ [input]: batched });
    ++reps;
    el = now() - t0;
  }
  const r = (v, d) => Number(v.toFixed(d));
  console.log(JSON.stringify({
    impl: 'onnxruntime', precision: 'fp32', threads: opt.threads,
    b1_median_ms: r(ms[Math.floor(ms.length / 2)], 4),
    b1_p99_ms: r(ms[Math.min(ms.length - 1, Math.floor(ms.length * 99 / 100))], 4),
    batch: opt.batch, batch_windows_per_s: r(reps * opt.batch / (el / 1e3), 1),
    ort: require(path.join(__dirname, 'node_modules', 'onnxruntime-node', 'package.json')).version,
  }));
  await session.release();
}

main().catch((e) => {
  process.stderr.write(`bench_ort: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
