#!/usr/bin/env bash
# Refreshes the vendored assets of /docs (Swagger UI) from the npm registry.
#
#   tools/vendor_api_docs.sh            # the pinned versions below
#
# To upgrade: change a version below, run this script, read the diff of
# src/atlas_compliance/api/docs_assets/VENDORED.md, run the browser tests
# (tests/console/test_api_docs_browser.py) and commit. Files are copied byte for byte from the
# packages, licences included; their SHA-256 sums are recorded in VENDORED.md.
set -euo pipefail

SWAGGER_UI_VERSION=5.35.0   # npm swagger-ui-dist, Apache-2.0

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/src/atlas_compliance/api/docs_assets"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$work"
npm pack --silent "swagger-ui-dist@$SWAGGER_UI_VERSION" >/dev/null
mkdir swagger-ui-dist
tar -xzf "swagger-ui-dist-$SWAGGER_UI_VERSION.tgz" -C swagger-ui-dist

rm -rf "$dest/swagger-ui"
mkdir -p "$dest/swagger-ui"
for file in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE; do
  cp "swagger-ui-dist/package/$file" "$dest/swagger-ui/$file"
done

{
  echo "# Vendored API documentation assets"
  echo
  echo "Written by \`tools/vendor_api_docs.sh\`; do not edit by hand. Copied byte for byte from the npm"
  echo "registry's package, so \`/docs\` loads nothing from a CDN."
  echo
  echo "| package | version | licence | tarball integrity |"
  echo "|---|---|---|---|"
  echo "| swagger-ui-dist | $SWAGGER_UI_VERSION | Apache-2.0 (swagger-ui/LICENSE, swagger-ui/NOTICE) | $(npm view "swagger-ui-dist@$SWAGGER_UI_VERSION" dist.integrity) |"
  echo
  echo "The bundle's third-party licences are in \`swagger-ui/swagger-ui-bundle.js.LICENSE.txt\`."
  echo
  echo "| file | SHA-256 |"
  echo "|---|---|"
  (cd "$dest" && for f in swagger-ui/*; do echo "| $f | $(sha256sum "$f" | cut -d' ' -f1) |"; done)
} > "$dest/VENDORED.md"
echo "vendored swagger-ui-dist $SWAGGER_UI_VERSION into $dest"
