// Catalogue: loads model, GPU and topology specs from the data files under data/.
//
// Data files are YAML; each numeric field has a sibling `source` text (or a `sources:` map) that
// says where the number comes from. Names are file stems: "qwen3-30b-a3b" reads
// data/models/qwen3-30b-a3b.yaml. A name containing '/' or ending in .yaml is read as a path.
// The data directory is $GIMBAL_DATA_DIR when set, else an installed gimbal's
// PREFIX/share/gimbal/data (core/install_paths.h), else the source tree's data/ (compiled in).
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "model/specs.h"

namespace gimbal {

// The directory holding models/, gpus/ and topologies/.
std::string DataDir();

Result<ModelSpec> LoadModel(const std::string& name_or_path);
Result<GpuSpec> LoadGpu(const std::string& name_or_path);
// A topology file fills the interconnect and efficiency fields of HardwareSpec (not `gpu`).
Result<HardwareSpec> LoadTopology(const std::string& name_or_path, const GpuSpec& gpu);

// Names available in the catalogue (file stems), sorted.
std::vector<std::string> ListModels();
std::vector<std::string> ListGpus();
std::vector<std::string> ListTopologies();

}  // namespace gimbal
