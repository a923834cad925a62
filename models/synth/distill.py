"""Knowledge distillation (Hinton et al. 2015): the network learns from the
averaged, softened answers of already trained networks as well as from the
labels.  A development option of train.py (`--teachers`), not its default."""
import torch
import torch.nn.functional as F

from synth.network import MnistCnn


def load_teachers(spec, channels, hidden):
    """Networks from `--save-state` files (weights at temperature 1), comma-separated, in eval mode."""
    teachers = []
    for path in spec.split(","):
        net = MnistCnn(channels, hidden)
        net.load_state_dict(torch.load(path))
        teachers.append(net.eval())
    return teachers


def distillation_loss(student_logits, images, teachers, temperature):
    """KL divergence from the teachers' mean softened probabilities to the
    student's, times temperature² so its gradients keep the size of the
    cross-entropy's whatever the temperature."""
    with torch.no_grad():
        target = torch.stack([F.softmax(t(images) / temperature, 1) for t in teachers]).mean(0)
    log_student = F.log_softmax(student_logits / temperature, 1)
    return F.kl_div(log_student, target, reduction="batchmean") * temperature ** 2
