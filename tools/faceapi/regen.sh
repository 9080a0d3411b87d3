#!/usr/bin/env bash
# Remakes face/testdata/golden.json, the oracle of the face package's tests:
# face-api's own pipeline on its demo photos. Needs Node (20 or later) and
# the npm registry once; nothing here runs in CI or in go test.
#
#   bash tools/faceapi/regen.sh
set -euo pipefail
cd "$(dirname "$0")"
# The exact versions of package.json, into node_modules here (ignored by git).
npm install --no-save --no-audit --no-fund --ignore-scripts
ppm=$(mktemp -d)
trap 'rm -rf "$ppm"' EXIT
(cd ../.. && go run ./tools/faceapi/ppm -o "$ppm" face/testdata/*.jpg)
node reference.js "$ppm"/*.ppm > ../../face/testdata/golden.json
echo "wrote face/testdata/golden.json"
