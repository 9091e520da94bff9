#!/usr/bin/env bash
# One time-boxed batch for a lent CUDA machine (docs/results.md section 14 says what it produced):
#   A. the course-scale strength calibration: `oicsr-lab calibrate --preset course --epochs 6`, all six
#      regularisers, calibration seeds 100 and 101 (60 runs of 6 epochs on the 45,000 training images;
#      every choice on the 5,000-image validation hold-out), and, side by side on the same GPU,
#   B. the iterative pipeline (Figure 2) for every regulariser and seed of the twelve shipped networks on
#      the full CIFAR-10 (`reproduce --preset demo --data cifar10`), ranked by out-in energy;
#   C. while time is left: the shipped networks one-shot pruned to 30/50/70 % FLOPs and fine-tuned 10 epochs,
#      with the unpruned control fine-tuned as long (the course preset's fine-tune length).
# Every step is cached and resumable; what is not finished when the time is up is stopped and can be resumed
# by the same command (here or on a CPU). Results land in RESULTS.
# What ran (one 15-minute H200 lease): A in full (60 runs, ~500 s with 10 workers); B stopped at a CUDA bug in
# surgery (fixed since) and was rerun alone with --jobs 12 (125 s); C has not run to completion.
# It runs from a source checkout without installing the package (PYTHONPATH), so it needs only the packages a
# GPU image has (torch, torchvision, numpy, pandas, scipy, matplotlib, pillow, tqdm); OICSR_LAB_OFFLINE=1 keeps
# every process from trying the CIFAR-10 download.
#
# Usage: bash scripts/gpu_batch.sh DATA_DIR RESULTS SECONDS   (DATA_DIR holds cifar10-jpeg.tar.gz)
set -uo pipefail
data=$1; res=$2; budget=${3:-480}
export OICSR_LAB_DATA=$data OICSR_LAB_OFFLINE=1 OICSR_LAB_PROGRESS=0 PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:-$PWD}
py=${PYTHON:-python3}
dev=${DEVICE:-cuda}
t0=$SECONDS
left() { echo $(( budget - (SECONDS - t0) )); }
mkdir -p "$res"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
$py -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
# decode the archive once, before the workers start
$py -c "from oicsr_lab.data import load_dataset; d = load_dataset('cifar10'); print('cifar10', len(d.train), len(d.test))" \
  || exit 1
# one short training on the device first: a broken device path fails here, in seconds
$py - "$dev" <<'PY' || exit 1
import sys, time, tempfile
from oicsr_lab.data import load_dataset
from oicsr_lab.train import build_trainer, preset
t = time.perf_counter()
tr = build_trainer(preset("ci", epochs=1), out_dir=tempfile.mkdtemp(), data=load_dataset("cifar10-sample"),
                   device=sys.argv[1], show_progress=False)
print("smoke", tr.device, tr.precision, tr.fit()[-1]["train_acc"], f"{time.perf_counter() - t:.1f}s")
PY
echo "A+B start at $((SECONDS - t0)) s"
timeout -s INT "$(left)" $py -m oicsr_lab calibrate --preset course --epochs 6 --jobs "${CAL_JOBS:-10}" \
  --device "$dev" --out "$res/calibrate-course" > "$res/calibrate.log" 2>&1 &
cal=$!
timeout -s INT "$(left)" $py -m oicsr_lab reproduce --preset demo --data cifar10 --ratios 0.3 --finetune-epochs 0 \
  --no-table1 --pipeline-regs l2,gl,l1bn,oicsr_gl --pipeline-seeds all --jobs "${PIPE_JOBS:-4}" --device "$dev" \
  --out "$res/demo-full-pipe" > "$res/pipeline.log" 2>&1
echo "B done at $((SECONDS - t0)) s (rc $?)"
if [ "$(left)" -gt 120 ]; then
  timeout -s INT "$(left)" $py -m oicsr_lab reproduce --preset demo --data cifar10 --finetune-ratios 0.3,0.5,0.7 \
    --finetune-epochs 10 --finetune-control --no-table1 --pipeline-regs '' --jobs "${PIPE_JOBS:-4}" \
    --device "$dev" --out "$res/demo-full-ft10" > "$res/finetune10.log" 2>&1
  echo "C done at $((SECONDS - t0)) s (rc $?)"
fi
wait "$cal"
echo "A done at $((SECONDS - t0)) s (rc $?)"
