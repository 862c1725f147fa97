// The training loop, checkpoints, resume and the kNN monitor. (train/trainer.h)
#include "train/trainer.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "engine/core/autocast.h"
#include "engine/core/random.h"
#include "engine/data/loader.h"
#include "engine/dist/ddp.h"
#include "engine/dist/dist.h"
#include "engine/io/checkpoint.h"
#include "engine/io/json.h"
#include "engine/nn/batchnorm.h"
#include "engine/ops/elementwise.h"
#include "engine/optim/adamw.h"
#include "engine/optim/lars.h"
#include "engine/optim/schedule.h"
#include "engine/optim/sgd.h"
#include "methods/method.h"
#include "train/eval.h"
#include "train/plot.h"

namespace siam::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

std::string fmt_g(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

std::string fmt_duration(double s) {
  char buf[64];
  long t = static_cast<long>(std::lround(std::max(0.0, s)));
  if (t >= 3600)
    std::snprintf(buf, sizeof(buf), "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof(buf), "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof(buf), "%lds", t);
  return buf;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const TrainConfig& c, const nn::NamedTensors& named) {
  std::vector<optim::ParamGroupSpec> groups;
  if (c.optimizer.exclude_bias_bn)
    groups = optim::split_decay_exclude(named);
  else
    groups.push_back(optim::ParamGroupSpec::from_named(named, "all"));
  const auto& o = c.optimizer;
  double lr = o.lr * (o.lr_scaling == "linear" ? static_cast<double>(c.train.batch_size) / 256.0 : 1.0);
  if (o.name == "sgd")
    return std::make_unique<optim::SGD>(
        std::move(groups),
        optim::SGDOptions{.lr = lr, .momentum = o.momentum, .weight_decay = o.weight_decay, .nesterov = o.nesterov});
  if (o.name == "lars")
    return std::make_unique<optim::LARS>(
        std::move(groups),
        optim::LARSOptions{
            .lr = lr, .momentum = o.momentum, .weight_decay = o.weight_decay, .eta = o.eta, .nesterov = o.nesterov});
  return std::make_unique<optim::AdamW>(
      std::move(groups),
      optim::AdamWOptions{.lr = lr, .beta1 = o.beta1, .beta2 = o.beta2, .weight_decay = o.weight_decay});
}

// The datasets of the kNN monitor: the (unaugmented) training images and the test split.
struct KnnSets {
  std::shared_ptr<data::Dataset> train, test;
  int64_t classes = 0;
};

KnnSets knn_sets(const TrainConfig& c) {
  KnnSets s;
  data::DataConfig tr = c.data.data, te = c.data.data;
  if (c.eval.knn_train_limit > 0)
    tr.limit = tr.limit > 0 ? std::min(tr.limit, c.eval.knn_train_limit) : c.eval.knn_train_limit;
  te.limit = c.eval.knn_test_limit;
  if (te.kind == "synthetic")
    te.seed = te.seed + 1;
  else if (te.kind == "image_folder")
    return s;  // no test split to find: the monitor is off
  else
    te.split = "test";
  s.train = data::make_dataset(tr);
  s.test = data::make_dataset(te);
  s.classes = s.train->num_classes();
  if (s.classes <= 0) s.train.reset();
  return s;
}

struct Progress {
  double loss_sum = 0;
  int64_t steps = 0;  // steps of this epoch counted in loss_sum
  std::vector<std::pair<std::string, double>> scalar_sums;
  void add(double loss, const std::vector<std::pair<std::string, double>>& scalars) {
    loss_sum += loss;
    ++steps;
    for (auto& [k, v] : scalars) {
      auto it = std::find_if(scalar_sums.begin(), scalar_sums.end(), [&](auto& p) { return p.first == k; });
      if (it == scalar_sums.end())
        scalar_sums.emplace_back(k, v);
      else
        it->second += v;
    }
  }
};

std::string encode_scalars(const std::vector<std::pair<std::string, double>>& s) {
  std::string out;
  for (auto& [k, v] : s) out += k + "=" + fmt_g(v) + ";";
  return out;
}

std::vector<std::pair<std::string, double>> decode_scalars(const std::string& text) {
  std::vector<std::pair<std::string, double>> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ';')) {
    auto eq = item.find('=');
    if (eq != std::string::npos) out.emplace_back(item.substr(0, eq), std::stod(item.substr(eq + 1)));
  }
  return out;
}

EpochMetrics metrics_from_json(const io::JsonValue& v) {
  EpochMetrics m;
  for (auto& [k, x] : v.members) {
    if (k == "epoch")
      m.epoch = static_cast<int>(x.num);
    else if (k == "step")
      m.step = static_cast<int64_t>(x.num);
    else if (k == "loss")
      m.loss = x.num;
    else if (k == "lr")
      m.lr = x.num;
    else if (k == "knn_top1")
      m.knn_top1 = x.kind == io::JsonValue::Kind::null ? -1 : x.num;
    else if (k == "images_per_s")
      m.images_per_s = x.num;
    else if (k == "epoch_s")
      m.epoch_s = x.num;
    else if (k == "knn_s")
      m.knn_s = x.num;
    else if (x.kind == io::JsonValue::Kind::number)
      m.scalars.emplace_back(k, x.num);
  }
  return m;
}

std::string join(const std::vector<float>& v) {
  std::string s;
  for (float x : v) {
    if (!s.empty()) s += ',';
    s += fmt_g(x);
  }
  return s;
}

void write_text_atomic(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    SIAM_CHECK(f.good(), "cannot write ", tmp.string());
    f << text;
    SIAM_CHECK(f.good(), "cannot write ", tmp.string());
  }
  fs::rename(tmp, path);
}

}  // namespace

std::string EpochMetrics::json() const {
  std::ostringstream os;
  os << "{\"epoch\": " << epoch << ", \"step\": " << step << ", \"loss\": " << fmt_g(loss) << ", \"lr\": " << fmt_g(lr)
     << ", \"knn_top1\": ";
  if (knn_top1 >= 0)
    os << fmt_g(knn_top1);
  else
    os << "null";
  os << ", \"images_per_s\": " << fmt_g(images_per_s) << ", \"epoch_s\": " << fmt_g(epoch_s)
     << ", \"knn_s\": " << fmt_g(knn_s);
  for (auto& [k, v] : scalars) os << ", " << io::json_quote(k) << ": " << fmt_g(v);
  os << "}";
  return os.str();
}

TrainResult run_training(const TrainConfig& c, const TrainOptions& o) {
  const auto t_start = Clock::now();
  if (c.train.threads > 0) omp_set_num_threads(c.train.threads);
  dist::Communicator& comm = o.comm ? *o.comm : dist::world();
  const int world = comm.world_size(), rank = comm.rank();
  const bool main_rank = rank == 0;
  const bool write = o.write_outputs && main_rank;
  SIAM_CHECK(c.train.batch_size % world == 0, "train: train.batch_size (", c.train.batch_size,
             ") is the global batch and must be a multiple of the number of ranks (", world, ")");
  const int64_t local_batch = c.train.batch_size / world;
  const int accumulate = c.train.accumulate;
  SIAM_CHECK(accumulate >= 1 && local_batch % accumulate == 0, "train: train.accumulate (", accumulate,
             ") must divide the per-rank batch, train.batch_size / ranks = ", c.train.batch_size, " / ", world, " = ",
             local_batch);
  const int64_t micro_batch = local_batch / accumulate;  // rows of each view per micro-batch on this rank
  auto say = [&](const char* fmt, auto... args) {
    if (o.quiet || !main_rank) return;
    std::printf(fmt, args...);
    std::fflush(stdout);
  };

  // ---- data, model, method, optimizer --------------------------------------------------------------
  auto ds = data::make_dataset(c.data.data);
  data::ViewPipeline views(c.data.views, ds->channels());
  manual_seed(c.train.seed);
  models::ResNetConfig rc{.depth = models::resnet_depth_from_name(c.model.arch),
                          .width = c.model.width,
                          .stem = models::stem_from_name(c.model.stem),
                          .in_channels = ds->channels(),
                          .num_classes = 0,
                          .zero_init_residual = c.model.zero_init_residual};
  auto encoder = std::make_shared<models::ResNet>(rc);
  auto method = methods::make_method(c.method, encoder);
  Device device = kCPU;
  if (c.train.device == "cuda") {
    SIAM_CHECK(cuda_available(), "train: train.device is cuda, but ",
               cuda_device_count() == 0 ? "no CUDA device is present" : "this build has no CUDA backend",
               " (set train.device: cpu)");
    device = Device(DeviceType::cuda, comm.local_rank() % std::max(1, cuda_device_count()));
    method->to(device);
  }
  method->set_communicator(&comm);
  const bool sync_bn = world > 1 && c.train.sync_bn && nn::convert_sync_batchnorm(*method, &comm) > 0;
  auto opt = make_optimizer(c, method->trainable_parameters());
  // Each rank reads its shard of every epoch (the same permutation on all ranks, rank r taking positions
  // r, r + W, ...), a batch of train.batch_size / W samples.
  data::Loader loader(ds, views,
                      {.batch_size = local_batch,
                       .shuffle = true,
                       .drop_last = true,
                       .seed = c.train.seed,
                       .threads = c.train.loader_threads,
                       .rank = rank,
                       .world_size = world,
                       .pin_memory = device.is_cuda(),
                       .pin_device = device.index});
  const int64_t spe = loader.batches_per_epoch();
  SIAM_CHECK(spe > 0, "train: ", ds->describe(), " has fewer samples than one batch of ", c.train.batch_size,
             " (lower train.batch_size or raise data.limit)");
  const int64_t total = spe * c.train.epochs;
  const double base_lr =
      opt->param_groups().empty() ? c.optimizer.lr : opt->param_groups()[0].lr / opt->param_groups()[0].lr_scale;
  std::unique_ptr<optim::LrSchedule> sched;
  if (c.schedule.name == "constant")
    sched = std::make_unique<optim::ConstantSchedule>(base_lr);
  else
    sched = std::make_unique<optim::WarmupCosineSchedule>(optim::WarmupCosineOptions{
        .base = base_lr,
        .final_value = c.schedule.final_lr,
        .warmup_steps = static_cast<int64_t>(std::llround(c.schedule.warmup_epochs * static_cast<double>(spe))),
        .total_steps = total,
        .warmup_start = c.schedule.warmup_start_lr});

  KnnSets knn;
  if (c.eval.knn) knn = knn_sets(c);
  const data::ViewSpec eval_spec = eval_view(c.data.views.at(0));

  const fs::path out = c.out_dir;
  const fs::path ckpt_path = out / "checkpoint.safetensors";
  if (write) fs::create_directories(out);

  // ---- resume ---------------------------------------------------------------------------------------
  TrainResult res;
  int start_epoch = 0;
  int64_t step = 0, skip = 0;
  Progress prog;
  double partial_images_s = 0;  // time spent on the resumed epoch before the interruption
  if (!o.resume_dir.empty()) {
    const fs::path rp = fs::path(o.resume_dir) / "checkpoint.safetensors";
    SIAM_CHECK(fs::exists(rp), "--resume ", o.resume_dir, ": no checkpoint.safetensors in that folder");
    io::TrainingCheckpoint ck = io::load_training_checkpoint(rp.string());
    auto meta = [&](const char* k) -> std::string {
      auto it = ck.metadata.find(k);
      return it == ck.metadata.end() ? std::string() : it->second;
    };
    SIAM_CHECK(meta("method") == c.method.name, "--resume ", rp.string(), ": the checkpoint is of method '",
               meta("method"), "', the config trains '", c.method.name, "'");
    SIAM_CHECK(meta("steps_per_epoch") == std::to_string(spe), "--resume ", rp.string(), ": the checkpoint has ",
               meta("steps_per_epoch"), " steps per epoch, this config ", spe,
               " (the batch size or the dataset changed)");
    io::load_state_dict(*method, ck.model, {}, rp.string());
    opt->load_named_state(ck.optimizer);
    ck.restore_rng(default_generator());
    start_epoch = static_cast<int>(ck.epoch);
    step = ck.step;
    skip = std::stoll(meta("step_in_epoch"));
    prog.loss_sum = std::stod(meta("loss_sum"));
    prog.steps = skip;
    prog.scalar_sums = decode_scalars(meta("scalar_sums"));
    partial_images_s = std::stod(meta("epoch_time_s"));
    std::stringstream hs(meta("history"));
    std::string line;
    while (std::getline(hs, line))
      if (!line.empty()) res.history.push_back(metrics_from_json(io::parse_json(line, rp.string() + " history")));
    say("siam train: resumed from %s at epoch %d, step %lld\n", rp.string().c_str(), start_epoch + 1,
        static_cast<long long>(step));
  }
  if (write) write_text_atomic(out / "config.yaml", c.resolved_yaml);
  // Gradients averaged over the ranks in buckets as backward produces them (engine/dist/ddp.h); parameters
  // and buffers start from rank 0's (after a resume every rank loaded the same checkpoint anyway).
  std::unique_ptr<dist::DistributedDataParallel> ddp;
  if (world > 1) {
    // On GPUs, SyncBatchNorm's backward all-reduces on the world's NCCL communicator while DDP's thread would
    // all-reduce buckets on its own: two NCCL communicators whose kernels may be issued in a different order on
    // each rank, which NCCL does not support (it can deadlock when both kernels cannot run at once). There the
    // buckets wait for the end of backward (finish()); MPI has no such limit.
    dist::DDPOptions ddp_opt;
    ddp_opt.bucket_mb = c.train.ddp_bucket_mb;
    ddp_opt.overlap = !(sync_bn && device.is_cuda());
    ddp = std::make_unique<dist::DistributedDataParallel>(method->trainable_parameters(), method->named_buffers(),
                                                          ddp_opt, &comm);
    res.ddp_buckets = ddp->num_buckets();
  }

  say("siam train: %s on %s, %s width %lld (%lld parameters), batch %lld x %d views, %lld steps/epoch, "
      "%d threads x %d ranks, out_dir %s\n",
      c.method.name.c_str(), ds->describe().c_str(), c.model.arch.c_str(), static_cast<long long>(c.model.width),
      static_cast<long long>(encoder->num_parameters()), static_cast<long long>(c.train.batch_size), views.num_views(),
      static_cast<long long>(spe), omp_get_max_threads(), world, c.out_dir.c_str());

  auto write_history = [&]() {
    if (!write) return;
    std::string text;
    for (auto& m : res.history) text += m.json() + "\n";
    write_text_atomic(out / "metrics.jsonl", text);
    write_curve_svg((out / "curve.svg").string(), res.history, c.method.name + " on " + c.data.data.kind);
  };
  auto save_checkpoint = [&](int epoch, int64_t step_in_epoch, double epoch_time) {
    if (!write) return;
    io::TrainingCheckpoint ck;
    ck.model = method->state_dict();
    ck.optimizer = opt->named_state();
    ck.set_rng(default_generator());
    ck.epoch = epoch;
    ck.step = step;
    std::string hist;
    for (auto& m : res.history) hist += m.json() + "\n";
    ck.metadata = {{"method", c.method.name},
                   {"steps_per_epoch", std::to_string(spe)},
                   {"step_in_epoch", std::to_string(step_in_epoch)},
                   {"loss_sum", fmt_g(prog.loss_sum)},
                   {"scalar_sums", encode_scalars(prog.scalar_sums)},
                   {"epoch_time_s", fmt_g(epoch_time)},
                   {"history", hist},
                   {"config", c.resolved_yaml}};
    io::save_training_checkpoint(ckpt_path.string(), ck);
    io::Metadata em = {{"arch", c.model.arch},
                       {"stem", c.model.stem},
                       {"width", std::to_string(c.model.width)},
                       {"in_channels", std::to_string(ds->channels())},
                       {"method", c.method.name},
                       {"epoch", std::to_string(epoch)},
                       {"eval_height", std::to_string(eval_spec.height)},
                       {"eval_width", std::to_string(eval_spec.width)},
                       {"mean", join(eval_spec.mean)},
                       {"std", join(eval_spec.std)},
                       {"data_kind", c.data.data.kind}};
    io::save_model((out / "encoder.safetensors").string(), *encoder, em);
  };

  // The kNN monitor: rank 0 evaluates, the others wait for its result.
  auto run_knn = [&]() {
    double top1 = -1;
    if (main_rank) {
      Features ftr = extract_features(*encoder, knn.train, eval_spec, c.eval.batch_size, c.train.loader_threads);
      Features fte = extract_features(*encoder, knn.test, eval_spec, c.eval.batch_size, c.train.loader_threads);
      top1 = knn_top1(ftr, fte, knn.classes, {.k = c.eval.knn_k, .t = c.eval.knn_t});
    }
    if (world > 1) {
      Tensor t = from_vector({top1}, {1}, DType::f64);
      comm.broadcast(t, 0);
      top1 = t.item();
    }
    return top1;
  };
  if (knn.train && c.eval.knn_before && step == 0) {
    res.knn_top1_init = run_knn();
    say("before training: kNN top-1 %.2f%%\n", 100 * res.knn_top1_init);
  }

  // ---- epochs ---------------------------------------------------------------------------------------
  auto last_print = Clock::now();
  double last_lr = sched->lr_at(step);
  for (int epoch = start_epoch; epoch < c.train.epochs; ++epoch) {
    loader.start_epoch(epoch);
    data::Batch batch;
    int64_t s_in_epoch = 0;
    if (epoch == start_epoch && skip > 0) {  // a resumed epoch: the batches already trained on
      for (; s_in_epoch < skip && loader.next(batch); ++s_in_epoch) {
      }
    } else {
      prog = Progress{};
      partial_images_s = 0;
    }
    auto t_epoch = Clock::now();
    int64_t images = 0;
    bool stopped = false;
    while (loader.next(batch)) {
      methods::StepInfo info{.step = step, .total_steps = total, .epoch = epoch};
      sched->apply(*opt, step);
      last_lr = sched->lr_at(step);
      std::vector<Tensor> views_dev = batch.views;
      if (device.is_cuda())  // from pinned buffers: asynchronous copies on the compute stream
        for (auto& v : views_dev) v = v.to(device, /*non_blocking=*/true);
      methods::LossOutput lo;
      double l = 0;
      if (accumulate == 1) {
        {
          AutocastGuard autocast(DType::bf16, c.train.precision == "bf16");
          lo = method->loss(views_dev, info);
        }
        opt->zero_grad();
        lo.loss.backward();
        if (ddp) ddp->finish();
        // Read after backward was queued (on a GPU the host does not wait for the forward before it queues the
        // backward), still before the update.
        l = lo.loss.item();
      } else {
        // Gradient accumulation: micro-batch k is rows [k m, (k + 1) m) of every view; backward of loss / A
        // adds its share to .grad, without DDP's all-reduce except for the last micro-batch. The step's loss
        // and scalars are the micro-batches' means.
        opt->zero_grad();
        std::vector<Tensor> micro_losses;
        for (int k = 0; k < accumulate; ++k) {
          std::vector<Tensor> micro(views_dev.size());
          for (size_t v = 0; v < micro.size(); ++v) micro[v] = views_dev[v].narrow(0, k * micro_batch, micro_batch);
          methods::LossOutput mo;
          {
            AutocastGuard autocast(DType::bf16, c.train.precision == "bf16");
            mo = method->loss(micro, info);
          }
          Tensor share = mo.loss * (1.0 / accumulate);
          if (ddp && k + 1 < accumulate) {
            auto ns = ddp->no_sync();
            share.backward();
          } else {
            share.backward();
          }
          micro_losses.push_back(mo.loss);
          for (auto& [name, v] : mo.scalars) {
            auto it = std::find_if(lo.scalars.begin(), lo.scalars.end(), [&](auto& p) { return p.first == name; });
            if (it == lo.scalars.end())
              lo.scalars.emplace_back(name, v / accumulate);
            else
              it->second += v / accumulate;
          }
        }
        if (ddp) ddp->finish();
        for (const Tensor& ml : micro_losses) l += ml.item() / accumulate;  // after every backward was queued
      }
      bool stop_now = (o.stop != nullptr && o.stop->load()) || (o.stop_after_step >= 0 && step >= o.stop_after_step);
      if (world > 1) {  // the loss of the global batch, and a stop requested on any rank, seen by every rank
        Tensor t = from_vector({l, stop_now ? 1.0 : 0.0}, {2}, DType::f64);
        comm.all_reduce(t, dist::ReduceOp::sum);
        auto v = t.to_vector<double>();
        l = v[0] / world;
        stop_now = v[1] > 0;
      }
      SIAM_CHECK(std::isfinite(l), "train: the loss became ", l, " at step ", step, " (epoch ", epoch + 1,
                 "); stopped before the update. The last good checkpoint is ",
                 fs::exists(ckpt_path) ? ckpt_path.string() : std::string("(none written yet)"),
                 ". Lower optimizer.lr or check the data.");
      method->before_optimizer_step(info);
      opt->step();
      method->after_optimizer_step(info);
      prog.add(l, lo.scalars);
      ++step;
      ++s_in_epoch;
      images += batch.views[0].size(0) * world;  // the global batch
      auto now = Clock::now();
      if (!o.quiet && (secs(last_print, now) >= c.train.log_every_s || s_in_epoch == spe)) {
        double el = secs(t_epoch, now);
        double ips = el > 0 ? static_cast<double>(images) / el : 0;
        double eta = ips > 0 ? static_cast<double>((total - step) * c.train.batch_size) / ips : 0;
        say("epoch %d/%d  step %lld/%lld  loss %.4f  lr %.4g  %.0f img/s  ETA %s\n", epoch + 1, c.train.epochs,
            static_cast<long long>(s_in_epoch), static_cast<long long>(spe),
            prog.loss_sum / static_cast<double>(prog.steps), last_lr, ips, fmt_duration(eta).c_str());
        last_print = now;
      }
      if (stop_now) {
        stopped = true;
        break;
      }
    }
    const double epoch_s = secs(t_epoch, Clock::now()) + partial_images_s;
    if (stopped && s_in_epoch < spe) {
      save_checkpoint(epoch, s_in_epoch, epoch_s);
      say("siam train: stopped at epoch %d, step %lld; state saved to %s (continue with --resume %s)\n", epoch + 1,
          static_cast<long long>(step), ckpt_path.string().c_str(), c.out_dir.c_str());
      res.interrupted = true;
      res.steps_done = step;
      res.epochs_done = epoch;
      res.wall_s = secs(t_start, Clock::now());
      return res;
    }
    EpochMetrics m;
    m.epoch = epoch + 1;
    m.step = step;
    m.loss = prog.loss_sum / static_cast<double>(std::max<int64_t>(prog.steps, 1));
    m.lr = last_lr;
    m.epoch_s = epoch_s;
    m.images_per_s = epoch_s > 0 ? static_cast<double>(spe * c.train.batch_size) / epoch_s : 0;
    for (auto& [k, v] : prog.scalar_sums) m.scalars.emplace_back(k, v / static_cast<double>(prog.steps));
    const bool last = epoch + 1 == c.train.epochs;
    if (knn.train && ((epoch + 1) % c.eval.knn_every == 0 || last)) {
      auto t0 = Clock::now();
      m.knn_top1 = run_knn();
      m.knn_s = secs(t0, Clock::now());
    }
    res.history.push_back(m);
    prog = Progress{};
    partial_images_s = 0;
    say("epoch %d/%d done  loss %.4f  kNN top-1 %s  %.0f img/s  %.1fs (+%.1fs kNN)\n", epoch + 1, c.train.epochs,
        m.loss, m.knn_top1 >= 0 ? (std::to_string(m.knn_top1 * 100).substr(0, 5) + "%").c_str() : "-", m.images_per_s,
        m.epoch_s, m.knn_s);
    write_history();
    if ((epoch + 1) % c.train.checkpoint_every == 0 || last) save_checkpoint(epoch + 1, 0, 0);
    if (stopped) {  // the stop came on the epoch's last step: the end-of-epoch checkpoint is the saved state
      if (!last) save_checkpoint(epoch + 1, 0, 0);
      say("siam train: stopped after epoch %d; state saved to %s\n", epoch + 1, ckpt_path.string().c_str());
      res.interrupted = true;
      res.steps_done = step;
      res.epochs_done = epoch + 1;
      res.wall_s = secs(t_start, Clock::now());
      return res;
    }
  }
  res.epochs_done = c.train.epochs;
  res.steps_done = step;
  res.wall_s = secs(t_start, Clock::now());
  const EpochMetrics& fin = res.history.back();
  std::ostringstream js;
  js << "{\"method\": " << io::json_quote(c.method.name) << ", \"epochs\": " << c.train.epochs
     << ", \"steps\": " << step << ", \"loss\": " << fmt_g(fin.loss) << ", \"knn_top1\": ";
  if (fin.knn_top1 >= 0)
    js << fmt_g(fin.knn_top1);
  else
    js << "null";
  if (res.knn_top1_init >= 0) js << ", \"knn_top1_init\": " << fmt_g(res.knn_top1_init);
  double ips_sum = 0;
  for (auto& h : res.history) ips_sum += h.images_per_s;
  js << ", \"images_per_s\": " << fmt_g(ips_sum / static_cast<double>(res.history.size()))
     << ", \"wall_s\": " << fmt_g(res.wall_s) << ", \"out_dir\": " << io::json_quote(c.out_dir) << "}";
  res.final_json = js.str();
  return res;
}

}  // namespace siam::train
