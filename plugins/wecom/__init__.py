"""WeCom (企业微信): application messages (`wecom`) and group robots (`wecom_robot`)."""
