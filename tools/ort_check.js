#!/usr/bin/env node
// Runs a model written by `harvit export --format onnx` in ONNX Runtime (onnxruntime-node, CPU)
// and compares its logits with harvit's own for the same raw windows (tests/onnx_export.sh).
//   node tools/ort_check.js --model m.onnx --x windows.f32 --ref harvit_logits.f32 [--tol 1e-4]
// windows.f32: float32 [B, T, M] raw samples; harvit_logits.f32: float32 [B, C]. T, M and C come
// from the session's input/output metadata, which must be x [N, 1, T, M] (N symbolic) and
// logits, probabilities [N, C]. The windows run in batches of changing size (1, 7, 256, ...: the
// batch dimension is dynamic). Checks: max |logit difference| <= tol, the same label (argmax) for
// every window, probabilities = softmax(logits) within 1e-6 and summing to 1. Prints one JSON line;
// exit 0 pass, 1 mismatch, 2 usage, 3 onnxruntime-node missing (cd bench/ort && npm ci --ignore-scripts).
'use strict';
const fs = require('fs');
const path = require('path');

function usage(msg) {
  process.stderr.write(`ort_check: ${msg}\nusage: node tools/ort_check.js --model M.onnx --x X.f32 --ref LOGITS.f32 [--tol 1e-4]\n`);
  process.exit(2);
}
const opt = { model: '', x: '', ref: '', tol: 1e-4 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const k = argv[i].replace(/^--/, ''), v = argv[i + 1];
  if (!(k in opt) || v === undefined) usage(`bad argument ${argv[i]}`);
  opt[k] = k === 'tol' ? Number(v) : v;
}
if (!opt.model || !opt.x || !opt.ref) usage('--model, --x and --ref are required');
if (!(opt.tol > 0)) usage('--tol must be a positive number');

const modulePath = process.env.HARVIT_ORT_MODULE ||
  path.join(__dirname, '..', 'bench', 'ort', 'node_modules', 'onnxruntime-node');
let ort;
try {
  ort = require(modulePath);
} catch (e) {
  process.stderr.write(`ort_check: onnxruntime-node missing at ${modulePath} (cd bench/ort && npm ci --ignore-scripts): ${e.message}\n`);
  process.exit(3);
}

function readF32(file) {
  const b = fs.readFileSync(file);
  if (b.length % 4) throw new Error(`${file}: ${b.length} bytes is not a whole number of float32`);
  const out = new Float32Array(b.length / 4);
  for (let i = 0; i < out.length; ++i) out[i] = b.readFloatLE(4 * i);
  return out;
}

function fail(msg) {
  process.stderr.write(`ort_check: ${opt.model}: ${msg}\n`);
  process.exit(1);
}

async function main() {
  const session = await ort.InferenceSession.create(opt.model, {
    executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: 2, interOpNumThreads: 1,
  });
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  if (!same(session.inputNames, ['x'])) fail(`inputs ${JSON.stringify(session.inputNames)}, expected ["x"]`);
  if (!same(session.outputNames, ['logits', 'probabilities']))
    fail(`outputs ${JSON.stringify(session.outputNames)}, expected ["logits","probabilities"]`);
  const inShape = session.inputMetadata[0].shape;
  if (inShape.length !== 4 || typeof inShape[0] !== 'string' || inShape[1] !== 1)
    fail(`input shape ${JSON.stringify(inShape)}, expected [N, 1, T, M] with a symbolic N`);
  const T = inShape[2], M = inShape[3];
  const outShape = session.outputMetadata[0].shape;
  if (outShape.length !== 2 || typeof outShape[0] !== 'string') fail(`logits shape ${JSON.stringify(outShape)}`);
  const C = outShape[1];
  if (!same(session.outputMetadata[1].shape, outShape)) fail('probabilities and logits differ in shape');

  const x = readF32(opt.x), ref = readF32(opt.ref);
  const W = T * M, B = x.length / W;
  if (!Number.isInteger(B) || B < 1) fail(`${opt.x}: ${x.length} floats is not a whole number of ${T}x${M} windows`);
  if (ref.length !== B * C) fail(`${opt.ref}: ${ref.length} floats, expected ${B} x ${C}`);

  const logits = new Float32Array(B * C), probs = new Float32Array(B * C);
  const sizes = [1, 7, 256];  // then 256 until the end
  let b0 = 0, runs = 0;
  while (b0 < B) {
    const nb = Math.min(sizes[Math.min(runs, sizes.length - 1)], B - b0);
    const t = new ort.Tensor('float32', x.subarray(b0 * W, (b0 + nb) * W), [nb, 1, T, M]);
    const out = await session.run({ x: t });
    if (!same(out.logits.dims, [nb, C]) || !same(out.probabilities.dims, [nb, C]))
      fail(`batch of ${nb}: output dims ${JSON.stringify(out.logits.dims)} / ${JSON.stringify(out.probabilities.dims)}`);
    logits.set(out.logits.data, b0 * C);
    probs.set(out.probabilities.data, b0 * C);
    b0 += nb;
    ++runs;
  }

  let maxDiff = 0, worst = -1, labelsEqual = 0, maxProbErr = 0, maxAbsLogit = 0;
  const argmax = (v, o) => { let k = 0; for (let c = 1; c < C; ++c) if (v[o + c] > v[o + k]) k = c; return k; };
  for (let b = 0; b < B; ++b) {
    const o = b * C;
    let mx = -Infinity, sum = 0;
    for (let c = 0; c < C; ++c) {
      const d = Math.abs(logits[o + c] - ref[o + c]);
      if (!(d <= maxDiff)) { maxDiff = d; worst = b; }  // NaN counts as the worst
      maxAbsLogit = Math.max(maxAbsLogit, Math.abs(ref[o + c]));
      mx = Math.max(mx, logits[o + c]);
    }
    for (let c = 0; c < C; ++c) sum += Math.exp(logits[o + c] - mx);
    let psum = 0;
    for (let c = 0; c < C; ++c) {
      maxProbErr = Math.max(maxProbErr, Math.abs(probs[o + c] - Math.exp(logits[o + c] - mx) / sum));
      psum += probs[o + c];
    }
    maxProbErr = Math.max(maxProbErr, Math.abs(psum - 1));
    if (argmax(logits, o) === argmax(ref, o)) ++labelsEqual;
  }
  const report = {
    model: opt.model, ort_version: ort.env.versions ? ort.env.versions.common : undefined, windows: B, T, M, C,
    batches: runs, max_abs_logit_diff: maxDiff, worst_window: worst, max_abs_logit: maxAbsLogit,
    labels_equal: labelsEqual, max_probability_error: maxProbErr, tol: opt.tol,
  };
  report.pass = maxDiff <= opt.tol && labelsEqual === B && maxProbErr <= 1e-6;
  process.stdout.write(JSON.stringify(report) + '\n');
  if (!report.pass) fail(`max |logit diff| ${maxDiff} (tol ${opt.tol}), ${labelsEqual}/${B} labels equal, ` +
                         `probability error ${maxProbErr}`);
}

main().catch((e) => fail(e.stack || String(e)));
