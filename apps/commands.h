// Sub-commands of the `siam` program that live in their own files (apps/<command>.cpp). Each takes the
// whole argv (argv[1] is the command name), parses its own options, throws siam::Error on bad input and
// returns the process exit code.
#pragma once

namespace siam::app {

// siam show-views --config FILE --out views.png [--rows N] [--seed S] [--epoch E] [--scale K]
int show_views(int argc, char** argv);

// siam info --model NAME [--width W] [--stem cifar|imagenet] [--in-ch C] [--size S] [--classes K]
int info(int argc, char** argv);

// siam train --config FILE [--set key=value ...] [--resume DIR] [--quiet]
int train(int argc, char** argv);

// siam eval knn|linear --checkpoint FILE|DIR [--data ROOT --kind KIND ...]
int eval(int argc, char** argv);

// siam embed --checkpoint FILE|DIR --out FILE.npy|FILE.safetensors [--split train|test ...]
int embed(int argc, char** argv);

}  // namespace siam::app
