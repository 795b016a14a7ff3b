#!/usr/bin/env bash
# System packages cnnlab uses from Debian: the offline Fashion-MNIST files and Chromium (browser tests).
# Installs them where apt is available and we are root; elsewhere says what to do and carries on
# (training then falls back to torchvision's download; the browser tests say how to get Chromium).
set -u
need=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte ] || need+=(dataset-fashion-mnist)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: no apt-get here; not installing ${need[*]}. Fashion-MNIST will be downloaded by torchvision" \
       "on first use; for the browser tests install Chromium and set CNNLAB_CHROMIUM=/path/to/chromium." >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "note: not root; run 'sudo apt-get install -y ${need[*]}' to get the offline data set and Chromium." \
       "Meanwhile Fashion-MNIST is downloaded by torchvision on first use." >&2
  exit 0
fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq "${need[@]}" >/dev/null \
  || echo "note: apt-get could not install ${need[*]}; see above" >&2
exit 0
