// reference.js runs @vladmandic/face-api's own pipeline (TinyFaceDetector,
// FaceLandmark68Net, FaceRecognitionNet) on the tfjs wasm backend and prints,
// for each PPM image given, what every stage produced, as JSON: the oracle the
// Go port in face/ is tested against (face/testdata/golden.json).
//
//   npm install --no-save (in this directory; package.json pins the versions)
//   go run ./tools/faceapi/ppm -o DIR face/testdata/*.jpg
//   node tools/faceapi/reference.js DIR/*.ppm > face/testdata/golden.json
'use strict';

const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
const wasm = require('@tensorflow/tfjs-backend-wasm');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

const modelDir = path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');

function readPPM(file) {
  const buf = fs.readFileSync(file);
  const head = buf.toString('latin1', 0, 64).match(/^P6\s+(\d+)\s+(\d+)\s+255\s/);
  if (!head) throw new Error(`${file}: not a binary PPM`);
  const width = Number(head[1]);
  const height = Number(head[2]);
  const pixels = buf.subarray(head[0].length, head[0].length + width * height * 3);
  return tf.tensor3d(Int32Array.from(pixels), [height, width, 3], 'int32');
}

const box = (b) => ({ x: b.x, y: b.y, width: b.width, height: b.height });

async function main() {
  const backend = process.env.TFJS_BACKEND || 'wasm';
  if (backend === 'wasm') wasm.setWasmPaths(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + path.sep);
  await tf.setBackend(backend);
  await tf.ready();
  await faceapi.nets.tinyFaceDetector.loadFromDisk(modelDir);
  await faceapi.nets.faceLandmark68Net.loadFromDisk(modelDir);
  await faceapi.nets.faceRecognitionNet.loadFromDisk(modelDir);
  const options = new faceapi.TinyFaceDetectorOptions();
  const images = [];
  for (const file of process.argv.slice(2)) {
    const img = readPPM(file);
    const results = await faceapi.detectAllFaces(img, options).withFaceLandmarks().withFaceDescriptors();
    results.sort((a, b) => a.detection.box.x - b.detection.box.x);
    const faces = results.map((r) => ({
      score: r.detection.score,
      box: box(r.detection.box),
      landmarks: r.landmarks.positions.map((p) => [p.x, p.y]),
      aligned: box(r.landmarks.align(null, { useDlibAlignment: true })),
      descriptor: Array.from(r.descriptor),
    }));
    images.push({ image: path.basename(file, '.ppm'), width: img.shape[1], height: img.shape[0], faces });
    img.dispose();
  }
  const out = {
    generator: 'tools/faceapi/reference.js',
    face_api: faceapi.version,
    tfjs: tf.version_core,
    backend: tf.getBackend(),
    detector: { net: 'TinyFaceDetector', input_size: options.inputSize, score_threshold: options.scoreThreshold },
    images,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => { console.error(err); process.exit(1); });
