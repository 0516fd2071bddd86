#!/usr/bin/env python3
"""PyTorch side of bench/run: times an EfficientNet training step (forward,
cross-entropy, backward, Adam) or inference, channels_last, on N threads.
Prints: CONFIG pytorch_img_s=X pytorch_step_s=S pytorch_rss_mb=A pytorch_cpu_s=C
(C: user + system CPU seconds of the process per step, a steadier measure
than the wall clock when other work shares the machine)."""
import argparse, resource, time
import torch, torchvision

ap = argparse.ArgumentParser()
ap.add_argument("--variant", default="b0")
ap.add_argument("--size", type=int, default=224)
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--mode", default="train")
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--warmup", type=int, default=2)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--device", default="cpu")
ap.add_argument("--amp", default="", help="bf16: autocast to bfloat16 (GPU)")
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
model = getattr(torchvision.models, "efficientnet_" + a.variant)(weights=None)
dev = torch.device(a.device)
model = model.to(dev).to(memory_format=torch.channels_last)
x = torch.randn(a.batch, 3, a.size, a.size, device=dev).to(memory_format=torch.channels_last)
y = torch.randint(0, 1000, (a.batch,), device=dev)
amp = a.amp == "bf16"
def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()
train = a.mode == "train"
if train:
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    lossf = torch.nn.CrossEntropyLoss()
else:
    model.eval()
t0 = 0.0
for it in range(a.warmup + a.steps):
    if it == a.warmup:
        sync()
        t0 = time.perf_counter()
        c0 = time.process_time()
    with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
        if train:
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(x), y)
            loss.backward()
            opt.step()
        else:
            with torch.inference_mode():
                model(x)
sync()
dt = (time.perf_counter() - t0) / a.steps
ct = (time.process_time() - c0) / a.steps
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(f"{a.mode}_{a.variant}_{a.size}_bs{a.batch} pytorch_img_s={a.batch / dt:.3f} pytorch_step_s={dt:.4f} pytorch_rss_mb={rss:.0f} pytorch_cpu_s={ct:.4f}")
