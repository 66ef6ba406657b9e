#!/usr/bin/env bash
# Runs the whole test suite. Installs what the interop tests need (qemu-utils: qemu-img, qemu-io, qemu-nbd)
# when it is missing. Extra arguments go to `dotnet test` (for example --filter).
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v qemu-img >/dev/null 2>&1 || ! command -v qemu-io >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq qemu-utils >/dev/null
fi

dotnet build Qimg.sln -c Release -nologo -clp:ErrorsOnly
dotnet test Qimg.sln -c Release --no-build -nologo "$@"
