
from zenml.utils.function_utils import _cli_wrapped_function

import sys
sys.path.append(r"/work/wt-27/steps")

from finetune import finetune as step_function

if unwrapped_entrypoint:=getattr(step_function, "unwrapped_entrypoint", None):
    func = _cli_wrapped_function(unwrapped_entrypoint)
else:
    func = _cli_wrapped_function(step_function.entrypoint)

if __name__=="__main__":
    from accelerate import Accelerator
    import cloudpickle as pickle
    accelerator = Accelerator()
    ret = func(standalone_mode=False)
    if accelerator.is_main_process:
        pickle.dump(ret, open(r"/work/wt-27/wpyPkUBYHiLhAsiVAeRX.out", "wb"))
