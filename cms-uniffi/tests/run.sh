#!/usr/bin/env bash
# The uniffi bindings, step by step (scripts/test.sh runs each step as one check):
#
#   cms-uniffi/tests/run.sh generate   build libcms_uniffi and the generator (feature `cli`), generate Kotlin,
#                                      Swift and Ruby into $CARGO_TARGET_DIR/uniffi/
#   cms-uniffi/tests/run.sh swift      the generated Swift equals the checked-in cms-uniffi/generated/swift/
#                                      (no Swift compiler is reachable here: the files are checked, not built)
#   cms-uniffi/tests/run.sh kotlin     compile and run tests/kotlin/Main.kt (kotlinc from the npm package
#                                      kotlin-compiler, unpacked under $CARGO_TARGET_DIR/tools/; Debian's JNA)
#   cms-uniffi/tests/run.sh ruby       run tests/ruby/test_cms.rb (Debian's ruby and ruby-ffi)
#   cms-uniffi/tests/run.sh bless      copy the generated Swift into cms-uniffi/generated/swift/
#
# The Kotlin and Ruby tests end with "<language>: N passed, M failed". Missing system packages (JNA, ruby,
# ruby-ffi) are installed with apt-get. CARGO_BUILD_TARGET, if set, is honoured (artifacts under the triple).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
artifacts=$target/${CARGO_BUILD_TARGET:+$CARGO_BUILD_TARGET/}debug
generated=$target/uniffi
library=$artifacts/libcms_uniffi.so
kotlin_version=2.4.20
kotlinc=$target/tools/kotlin-compiler-$kotlin_version/bin/kotlinc
jna=/usr/share/java/jna.jar
jni=/usr/lib/x86_64-linux-gnu/jni

apt_install() { # apt_install PACKAGE...: install Debian packages, quietly
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" > /dev/null; } \
    || { echo "!! could not install $*" >&2; return 1; }
}

generate() {
  cargo build --quiet --locked -p cms-uniffi --features cli
  rm -rf "$generated"
  for language in kotlin swift ruby; do
    "$artifacts/uniffi-bindgen" generate "$library" --language "$language" --no-format \
      --out-dir "$generated/$language"
  done
  ls "$generated"/kotlin/uniffi/cms_uniffi/cms_uniffi.kt "$generated"/ruby/cms_uniffi.rb \
    "$generated"/swift/cms_uniffi.swift "$generated"/swift/cms_uniffiFFI.h "$generated"/swift/cms_uniffiFFI.modulemap
}

swift() {
  diff -ru "$root/cms-uniffi/generated/swift" "$generated/swift" \
    || { echo "!! the generated Swift changed: review it, then run cms-uniffi/tests/run.sh bless" >&2; return 1; }
  echo "swift: the generated files equal cms-uniffi/generated/swift/"
}

bless() {
  rm -rf "$root/cms-uniffi/generated/swift"
  mkdir -p "$root/cms-uniffi/generated"
  cp -r "$generated/swift" "$root/cms-uniffi/generated/swift"
}

kotlin() {
  [ -f "$jna" ] && [ -f "$jni/libjnidispatch.system.so" ] || apt_install libjna-java libjna-jni
  if [ ! -x "$kotlinc" ]; then
    # The full JVM compiler distribution, as an npm package (Maven Central is not reachable from here).
    local unpack
    unpack=$(mktemp -d "$target/tools.XXXXXX")
    (cd "$unpack" && npm pack --silent "kotlin-compiler@$kotlin_version" > /dev/null \
      && tar xzf "kotlin-compiler-$kotlin_version.tgz")
    mkdir -p "$target/tools"
    rm -rf "$target/tools/kotlin-compiler-$kotlin_version"
    mv "$unpack/package" "$target/tools/kotlin-compiler-$kotlin_version"
    rm -rf "$unpack"
  fi
  local jar=$generated/kotlin-test.jar
  "$kotlinc" -nowarn -cp "$jna" "$generated/kotlin/uniffi/cms_uniffi/cms_uniffi.kt" \
    "$root/cms-uniffi/tests/kotlin/Main.kt" -include-runtime -d "$jar" 2> >(grep -v '^warning: ' >&2)
  # Debian's jna.jar has no native part: -Djna.nosys=false lets it load Debian's libjnidispatch from the JNI folder.
  java -Djna.nosys=false -Djava.library.path="$jni" -Djna.library.path="$artifacts" \
    -cp "$jar:$jna" MainKt "$root/tests/vectors"
}

ruby() {
  command -v ruby > /dev/null && command ruby -e 'require "ffi"' 2> /dev/null || apt_install ruby ruby-ffi
  LD_LIBRARY_PATH="$artifacts${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    command ruby -I "$generated/ruby" "$root/cms-uniffi/tests/ruby/test_cms.rb" "$root/tests/vectors"
}

case "${1:-}" in
  generate | swift | kotlin | ruby | bless) "$1" ;;
  *) echo "usage: $0 generate|swift|kotlin|ruby|bless" >&2; exit 2 ;;
esac
