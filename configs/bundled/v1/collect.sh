#!/bin/bash
# Data of the vjepa2-ac-sim-small v1 candidate (1290 episodes, 76k steps, 20-30 min with 2 workers): 128 px
# dual_wrist_large, mix policy with near-miss grasps; MuJoCo nominal and with every shift factor, PyBullet nominal.
# CAMERA=dual_wrist_tiled DATA=v1T gives the tiled camera's data (docs/experiments.md: it planned worse).
# bash configs/bundled/v1/collect.sh   (resumable: run it again after an interruption)
export MUJOCO_GL=egl PYOPENGL_PLATFORM=egl OMP_NUM_THREADS=1
ALL='"factors": ["lighting", "table", "object_color", "camera", "distractors"]'
c() {  # task object episodes seed backend extra-env-kwargs
  vjepa2-ac collect --env vjepa2ac/$1-v0 --policy mix --episodes $3 --out data/${DATA:-v1L}/$5_$6_$1_$2 --seed $4 \
    --image-size 128 --camera ${CAMERA:-dual_wrist_large} --workers ${WORKERS:-2} --no-progress --expert-kwargs '{"miss": 0.5}' \
    --env-kwargs "{\"object\": \"$2\", \"backend\": \"$5\"${7:+, $7}}"
}
c FrankaPickPlace cube 200 11 mujoco nominal
c FrankaGrasp cube 100 12 mujoco nominal
c FrankaReach cube 100 13 mujoco nominal
c FrankaPickPlace cup 120 14 mujoco nominal
c FrankaGrasp cup 70 15 mujoco nominal
c FrankaReachWithObject cube 60 16 mujoco nominal
c FrankaReachWithObject cup 40 17 mujoco nominal
c FrankaPickPlace cube 120 21 mujoco shift "$ALL"
c FrankaGrasp cube 60 22 mujoco shift "$ALL"
c FrankaReach cube 60 23 mujoco shift "$ALL"
c FrankaPickPlace cup 60 24 mujoco shift "$ALL"
c FrankaGrasp cup 40 25 mujoco shift "$ALL"
c FrankaReachWithObject cube 40 26 mujoco shift "$ALL"
c FrankaPickPlace cube 80 31 pybullet nominal
c FrankaGrasp cube 40 32 pybullet nominal
c FrankaReach cube 40 33 pybullet nominal
c FrankaPickPlace cup 40 34 pybullet nominal
c FrankaReachWithObject cube 20 36 pybullet nominal
echo DONE
