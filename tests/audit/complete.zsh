# What zsh's completion system makes of command lines:
#   zsh -f complete.zsh DIR LINE...
# Starts an interactive zsh in a pseudo-terminal (the zsh/zpty module) that loads the
# completion functions in DIR; for each LINE, types it, presses Tab once, and prints
# the line as completion left it, one per output line.
zmodload zsh/zpty || exit 3
dir=$1
shift
out=$(mktemp) || exit 3
zpty z zsh -f -i
zpty -w z "PROMPT=''; fpath=(${(q)dir} \$fpath); autoload -Uz compinit; compinit -u -D"
# Ctrl-X Ctrl-B: append the line being edited to $out and clear it.
zpty -w z "_dump() { print -r -- \"\$BUFFER\" >> ${(q)out}; BUFFER=''; }; zle -N _dump; bindkey '^X^B' _dump"
for line in "$@"; do
  zpty -w -n z "$line"$'\t\x18\x02'
done
zpty -w z "print -r -- ALL''DONE"
# The shell echoes the command first (ALL''DONE), then prints ALLDONE when it has
# run every key before it. At most 10 s.
for i in {1..200}; do
  zpty -r -t z chunk
  [[ $chunk == *ALLDONE* ]] && break
  sleep 0.05
done
zpty -d z
cat -- $out
rm -f -- $out
