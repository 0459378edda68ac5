# Cases for ../../nix/best-model.nix, pure (builtins only):
#   nix-instantiate --eval --strict --json tests/nix/best-model.nix
let
  selectBest = import ../../nix/best-model.nix;
  best = selectBest { };
  seeds = accuracies: builtins.genList (seed: {
    inherit seed;
    model = "/nix/store/model-seed-${toString seed}";
    accuracy = builtins.elemAt accuracies seed;
  }) (builtins.length accuracies);
  pick = accuracies: (best (seeds accuracies)).seed;
  pickAbove = minAccuracy: accuracies: (selectBest { inherit minAccuracy; } (seeds accuracies)).seed;
  # whether evaluating `value` fails (the error itself is checked by test_nix.py)
  fails = value: !(builtins.tryEval (builtins.deepSeq value value)).success;
in
{
  highest = pick [ "0.9812\n" "0.9904\n" "0.9871\n" ];
  single = pick [ "0.5" ];
  tieFirstWins = pick [ "0.97" "0.99" "0.99\n" "0.98" ];
  whitespace = pick [ "  0.90 \n" "\t0.91\n" ];
  numbers = pick [ 0.5 1 0.75 ];
  scientific = pick [ "9.8e-1" "0.979" ];
  leadingDot = pick [ ".95" "0.949" ];
  integerVsFloat = pick [ "0.999" "1" ];
  keepsCandidate = best (seeds [ "0.1" "0.3" "0.2" ]);
  emptyFails = fails (best [ ]);
  garbageFails = fails (best (seeds [ "0.9" "NaN" ]));
  emptyStringFails = fails (best (seeds [ "" ]));
  missingAccuracyFails = fails (best [ { seed = 0; } ]);

  # with a floor
  floorKeepsBest = pickAbove 0.98 [ "0.985" "0.991" "0.97" ];
  floorIsInclusive = pickAbove 0.98 [ "0.97" "0.98" ];
  noneAboveFloorFails = fails (pickAbove 0.99 [ "0.97" "0.985" ]);
  # a malformed accuracy is an error even below the floor
  garbageBelowFloorFails = fails (pickAbove 0.98 [ "0.99" "n/a" ]);
}
