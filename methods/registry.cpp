// make_method: the method named in the options. (methods/method.h)
#include "methods/barlow_twins.h"
#include "methods/byol.h"
#include "methods/method.h"
#include "methods/moco.h"
#include "methods/simclr.h"
#include "methods/simsiam.h"
#include "methods/swav.h"
#include "methods/vicreg.h"
#include "methods/wmse.h"

namespace siam::methods {

namespace {

void check_head(const std::string& method, const char* which, const HeadOptions& h) {
  SIAM_CHECK(h.layers >= 1, method, ": method.", which, ".layers must be >= 1, got ", h.layers);
  SIAM_CHECK(h.out > 0 && (h.layers == 1 || h.hidden > 0), method, ": method.", which,
             ".hidden and .out must be positive, got ", h.hidden, " and ", h.out);
}

}  // namespace

std::shared_ptr<Method> make_method(const MethodOptions& o, std::shared_ptr<models::ResNet> encoder) {
  defaults_for(o.name);  // validates the name
  check_head(o.name, "projector", o.projector);
  if (o.name == "byol" || o.name == "simsiam") check_head(o.name, "predictor", o.predictor);
  if (o.name == "simclr") return std::make_shared<SimCLR>(std::move(encoder), o);
  if (o.name == "moco") return std::make_shared<MoCo>(std::move(encoder), o);
  if (o.name == "byol") return std::make_shared<BYOL>(std::move(encoder), o);
  if (o.name == "simsiam") return std::make_shared<SimSiam>(std::move(encoder), o);
  if (o.name == "barlow_twins") return std::make_shared<BarlowTwins>(std::move(encoder), o);
  if (o.name == "wmse") return std::make_shared<WMSE>(std::move(encoder), o);
  if (o.name == "swav") return std::make_shared<SwAV>(std::move(encoder), o);
  return std::make_shared<VICReg>(std::move(encoder), o);
}

}  // namespace siam::methods
