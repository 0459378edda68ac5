# Pick the best of several trained models, like Pylightnix's `match_best`.
#
# A pure function that needs nothing but builtins (no nixpkgs, no lib), so it
# can be tested with `nix-instantiate --eval --strict` on literal values.
#
#   import ./best-model.nix { minAccuracy = 0.98; } candidates
#
#   minAccuracy :: number   the floor; candidates below it are skipped
#   candidates  :: [ { accuracy :: string | number; ... } ]
#   result      :: the candidate with the highest accuracy, unchanged; an error
#                  naming the best accuracy when no candidate reaches the floor
#
# `accuracy` is usually `builtins.readFile "${model}/accuracy.txt"` (one number,
# surrounding whitespace allowed).  On a tie the earliest candidate wins, so
# with candidates ordered by seed the lowest seed is chosen.
{
  minAccuracy ? 0,
}:
candidates:
let
  parseAccuracy =
    value:
    if builtins.isInt value || builtins.isFloat value then
      value
    else if !(builtins.isString value) then
      throw "bestModel: accuracy must be a string or a number, got a ${builtins.typeOf value}"
    else
      let
        m = builtins.match "[[:space:]]*([0-9]*)(\\.[0-9]*)?([eE][-+]?[0-9]+)?[[:space:]]*" value;
        int = builtins.elemAt m 0;
        frac = builtins.elemAt m 1;
        exp = builtins.elemAt m 2;
        # JSON needs a digit before and after the point: "0.5", not ".5" or "5."
        json =
          (if int == "" then "0" else int)
          + (if frac == null || frac == "." then "" else frac)
          + (if exp == null then "" else exp);
      in
      if m == null || (int == "" && (frac == null || frac == ".")) then
        throw "bestModel: cannot parse accuracy '${value}' (expected one number, e.g. the contents of accuracy.txt)"
      else
        builtins.fromJSON json;

  # Parse every accuracy, so that a malformed accuracy.txt is an error even
  # when it would not have won.
  scored = map (candidate: {
    inherit candidate;
    score = parseAccuracy (
      candidate.accuracy or (throw "bestModel: a candidate has no `accuracy` attribute")
    );
  }) candidates;

  better = best: next: if next.score > best.score then next else best;
  highest = list: builtins.foldl' better (builtins.head list) (builtins.tail list);
  passing = builtins.filter (x: x.score >= minAccuracy) scored;
in
if !(builtins.isList candidates) then
  throw "bestModel: expected a list of candidates"
else if !(builtins.isInt minAccuracy || builtins.isFloat minAccuracy) then
  throw "bestModel: minAccuracy must be a number, got a ${builtins.typeOf minAccuracy}"
else if candidates == [ ] then
  throw "bestModel: no candidates to choose from"
else
  builtins.deepSeq (map (x: x.score) scored) (
    if passing == [ ] then
      throw "bestModel: none of the ${toString (builtins.length scored)} candidates reaches the floor ${builtins.toJSON minAccuracy} (the best scored ${builtins.toJSON (highest scored).score}); lower it with minAccuracy or train longer"
    else
      (highest passing).candidate
  )
