import hydra
@hydra.main(version_base=None, config_path="pkg://megathink.hydra_conf", config_name="sft")
def app(cfg):
    print(cfg)
def main():
    app()
