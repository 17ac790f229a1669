# A shell script for Debian's busybox: what `tests/process.rs` runs on Herald and compares,
# byte for byte, with what the same busybox printed running it on Linux
# (tests/busybox-check.expected). Everything it makes lives in a directory it removes.
set -u
work=/tmp/busybox-check
rm -rf "$work"
mkdir "$work" && cd "$work" || exit 9

echo "== files and redirects"
echo one > a
echo two >> a
cat a
wc -l < a
echo err 2>&1 >&2 | cat
ls nothing 2>&1 | head -1
printf 'x\ny\n' > b; cat a b > c; wc -l c
ls -l | awk '{print $1, $5, $NF}' | tail -n +2

echo "== text tools"
printf 'pear\napple\npear\nfig\napple\n' | sort | uniq -c | sed 's/^ *//'
seq 1 1000 | sort -rn | head -3
seq 1 10 | tail -n 2
grep -c p a b c
sed 's/o/0/g' a
echo a:b:c | cut -d: -f2
echo hello | tr a-z A-Z
seq 1 5 | paste -sd+ | bc 2>/dev/null || echo "$(( $(seq 1 5 | paste -sd+) ))"
head -c 5 c; echo

echo "== directories"
mkdir -p d/e/f
mv a d/e/
ls -1 d/e
rm -r d
[ -d d ] || echo "d is gone"
test -f b && echo "b is a file"
[ -e nothing ] || echo "nothing is absent"

echo "== control flow"
for i in 1 2 3; do printf '%s ' "$i"; done; echo
x=5; while [ "$x" -gt 0 ]; do x=$((x - 1)); done; echo "x=$x"
for word in apple fig kiwi; do
  case "$word" in
    a*) echo "$word starts with a";;
    *i*) echo "$word has an i";;
  esac
done
greet() { echo "hello, $1"; return 4; }
greet world; echo "greet returned $?"
if false; then echo no; elif true; then echo elif; fi

echo "== here documents and substitution"
cat <<END
x is $x
END
cat <<'END'
not expanded: $x
END
echo "$(echo nested "$(echo deep)")"
n=$(seq 1 100 | wc -l); echo "n=$n"

echo "== processes"
sh -c 'exit 3'; echo "status $?"
sleep 1 & pid=$!; echo started; wait "$pid"; echo "waited $?"
sh -c 'kill -INT $$'; echo "interrupted $?"
sh -c 'kill -TERM $$'; echo "terminated $?"
(echo in a subshell; exit 2); echo "subshell $?"
echo piped | (read line; echo "read: $line")
true | false; echo "pipeline $?"

cd /
rm -rf "$work"
echo "== done"
